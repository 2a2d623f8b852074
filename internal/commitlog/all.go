package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// All-or-none groups. A proposal that must take effect whole, across
// owners, is a TypeAll entry followed by the n entries of the group. The
// first of them is the guard: its owner decides, in Apply, whether the
// group may take effect (a function's input offset and actor versions,
// say). If the guard's result is an error, the rest of the group is not
// applied: each of them gets a *SkippedError. The decision is made while
// applying, so every agent makes the same one. Entries of the group after
// the guard that fail on their own (a topic deleted meanwhile) fail alone:
// proposers validate them beforehand, so only a concurrent change can.

// ErrSkipped is wrapped by the result of an entry of an all-or-none group
// whose guard refused the group.
var ErrSkipped = errors.New("not applied: the group's guard refused it")

// SkippedError is the apply result of an entry skipped with its group.
type SkippedError struct {
	// Guard is the guard's result.
	Guard error
}

func (e *SkippedError) Error() string { return fmt.Sprintf("%v: %v", ErrSkipped, e.Guard) }
func (e *SkippedError) Is(target error) bool {
	return target == ErrSkipped
}
func (e *SkippedError) Unwrap() error { return e.Guard }

// All returns group as one all-or-none proposal: propose the result as is
// (with nothing before or after it in the same proposal), and read the
// group's results from index 1 on. group[0] is the guard.
func All(group ...Entry) []Entry {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(len(group)))
	return append([]Entry{{Type: TypeAll, Data: b[:]}}, group...)
}

func allCount(e Entry) (int, error) {
	if len(e.Data) != 4 {
		return 0, fmt.Errorf("malformed all-or-none entry: %d bytes", len(e.Data))
	}
	return int(binary.BigEndian.Uint32(e.Data)), nil
}
