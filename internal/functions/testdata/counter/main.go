// A test guest built on the fn SDK: an actor counting its invocations.
// "inc" adds one and answers the new count, prefixed by the version
// string below, which tests change to tell deployments apart.
package main

import (
	"context"
	"strconv"

	"github.com/twoway/twoway/fn"
)

// label is set at build time (-ldflags -X main.label=...).
var label = "v1"

func init() {
	fn.HandleInvoke(func(ctx context.Context, method string, body []byte) ([]byte, error) {
		v, _, err := fn.State()
		if err != nil {
			return nil, err
		}
		n, _ := strconv.Atoi(string(v))
		if method == "get" {
			return []byte(label + " " + strconv.Itoa(n)), nil
		}
		n++
		if err := fn.SetState([]byte(strconv.Itoa(n))); err != nil {
			return nil, err
		}
		return []byte(label + " " + strconv.Itoa(n)), nil
	})
}

func main() {}
