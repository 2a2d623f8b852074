// A test guest built on the fn SDK that reads a topic: invoked with a
// topic name, it answers the high watermark and the values of partition
// 0's records, one per line.
package main

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/twoway/twoway/fn"
)

func init() {
	fn.HandleInvoke(func(ctx context.Context, method string, body []byte) ([]byte, error) {
		res, err := fn.Read(string(body), 0, 0, 100)
		if errors.Is(err, fn.ErrDenied) {
			return []byte("denied"), nil
		}
		if err != nil {
			return nil, err
		}
		lines := []string{strconv.FormatInt(res.HighWatermark, 10)}
		for _, r := range res.Records {
			lines = append(lines, strconv.FormatInt(r.Offset, 10)+"="+string(r.Value))
		}
		return []byte(strings.Join(lines, "\n")), nil
	})
}

func main() {}
