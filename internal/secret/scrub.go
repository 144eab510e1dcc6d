package secret

import (
	"errors"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parsers quote what they could not use: yaml.v3 names the value it could
// not unmarshal (`…`), the key it did not know (field … not found), the
// anchor it could not find ('…'); encoding/json the unknown field ("…").
// In configuration data all of that may be a secret, so messages about
// such data go through Scrub, which keeps where and what kind of problem,
// never the text. Single characters stay: "expected ':'" names syntax.
var (
	quotedRE       = regexp.MustCompile("`[^`]*`|'[^']{2,}'|\"[^\"]{2,}\"")
	unknownFieldRE = regexp.MustCompile(`field .+ not found in type .*`)
	inTypeRE       = regexp.MustCompile(` in type \S+`)
	// A local tag (!name) is the data's own text; YAML's own (!!str) are not.
	customTagRE = regexp.MustCompile(`(^|\s)![^!\s]\S*`)
)

// Scrub removes quoted data from a parser's message.
func Scrub(msg string) string {
	msg = unknownFieldRE.ReplaceAllString(msg, "unknown field")
	msg = inTypeRE.ReplaceAllString(msg, "")
	msg = quotedRE.ReplaceAllString(msg, "")
	msg = customTagRE.ReplaceAllString(msg, "${1}a tagged value")
	return strings.Join(strings.Fields(msg), " ")
}

// ScrubYAML renders a yaml.v3 error as "line N: what is wrong", each
// problem of a type error on its own, without the data.
func ScrubYAML(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = Scrub(m)
		}
		return strings.Join(msgs, "; ")
	}
	return Scrub(strings.TrimPrefix(err.Error(), "yaml: "))
}
