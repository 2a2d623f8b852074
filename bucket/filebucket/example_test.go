package filebucket_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
)

// Two writers race for the same commit; the bucket picks one.
func Example() {
	dir, err := os.MkdirTemp("", "bucket")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := filebucket.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	for _, writer := range []string{"alice", "bob"} {
		commit := "commit by " + writer
		_, err := b.PutIfAbsent(ctx, "log/00000000000000000001", strings.NewReader(commit), int64(len(commit)))
		switch {
		case err == nil:
			fmt.Println(writer, "won")
		case errors.Is(err, bucket.ErrPrecondition):
			fmt.Println(writer, "lost")
		default:
			log.Fatal(err)
		}
	}
	data, _, err := bucket.ReadAll(ctx, b, "log/00000000000000000001")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(data))
	// Output:
	// alice won
	// bob lost
	// commit by alice
}
