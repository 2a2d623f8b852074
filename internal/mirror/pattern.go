package mirror

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Pattern selects the topics to mirror. Its text is a comma-separated list
// of items, each a topic name, a glob (path.Match: * ? [a-z]) or, between
// slashes, a regular expression (RE2) that must match the whole name:
//
//	telemetry
//	telemetry,events-*
//	/sensor-[0-9]+/,alerts
//
// A topic matches when any item does.
type Pattern struct {
	text  string
	globs []string
	res   []*regexp.Regexp
}

// ParsePattern parses a pattern; an empty one, or an invalid glob or
// expression, is an error naming the item.
func ParsePattern(text string) (Pattern, error) {
	p := Pattern{text: text}
	for item := range strings.SplitSeq(text, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			continue
		case len(item) >= 2 && strings.HasPrefix(item, "/") && strings.HasSuffix(item, "/"):
			re, err := regexp.Compile("^(?:" + item[1:len(item)-1] + ")$")
			if err != nil {
				return Pattern{}, fmt.Errorf("topics pattern: %q is not a regular expression: %v", item, err)
			}
			p.res = append(p.res, re)
		default:
			if _, err := path.Match(item, ""); err != nil {
				return Pattern{}, fmt.Errorf("topics pattern: %q is not a valid glob: %v", item, err)
			}
			p.globs = append(p.globs, item)
		}
	}
	if len(p.globs) == 0 && len(p.res) == 0 {
		return Pattern{}, fmt.Errorf("topics pattern %q names no topic (give names, globs such as events-*, or /regexp/, separated by commas)", text)
	}
	return p, nil
}

// Match reports whether topic is selected.
func (p Pattern) Match(topic string) bool {
	for _, g := range p.globs {
		if ok, _ := path.Match(g, topic); ok {
			return true
		}
	}
	for _, re := range p.res {
		if re.MatchString(topic) {
			return true
		}
	}
	return false
}

func (p Pattern) String() string { return p.text }
