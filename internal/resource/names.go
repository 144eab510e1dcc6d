// Package resource holds the vocabulary every API resource shares: the
// name rule and the Kubernetes-like object metadata. It is small on
// purpose, so domain packages can share these types without importing
// each other.
package resource

import (
	"fmt"
	"regexp"
)

// MaxNameLength is the longest name any resource may have.
const MaxNameLength = 32

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// NameRule says the rule in words, for errors and documentation.
const NameRule = "1 to 32 characters of A-Z, a-z, 0-9, '_', '.' and '-', not '.' or '..'"

// ValidateName checks a resource name against the one rule every resource
// follows; what names the kind of thing being named in the error.
func ValidateName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is missing: names are %s", what, NameRule)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%s name is %d characters long: names are %s", what, len(name), NameRule)
	}
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%s name %q has characters that are not allowed: names are %s", what, name, NameRule)
	}
	return nil
}
