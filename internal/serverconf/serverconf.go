// Package serverconf reads the App Connect Enterprise structures of a
// serverconf configuration (ACE's server.conf.yaml overrides file).
//
// A serverconf file may hold Sluice's own settings (lower-case keys:
// log, http, flows, shutdown, trace, values) and ACE's sections (keys
// that start with a capital letter, such as Defaults, UserVariables, Log,
// ResourceManagers, and ACE's lower-case scalars such as trace or
// defaultQueueManager). Split takes ACE's part out of a parsed document:
// the keys that have a meaning in Sluice come back as Mapped, every other
// leaf is named in Ignored so the runtime can say so — an ACE file is
// never refused for holding settings Sluice has no use for.
package serverconf

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/secret"
)

// Mapped is what ACE's keys mean in Sluice. Zero fields were not given.
type Mapped struct {
	// PolicyProject is Defaults.policyProject: the policy project whose
	// policies a flow gets when it names a policy without its project.
	PolicyProject string
	// UserVariables reach flows as .config, beside Sluice's values.
	UserVariables map[string]any
	// LogFormat is "json" or "text", from Log.outputFormat.
	LogFormat string
	// LogLevel is "debug" when ACE's trace is debug or debugTrace.
	LogLevel string
	// MaxBodyBytes is HTTPConnector.MaxPostSize.
	MaxBodyBytes int64
	// ReadHeaderTimeout is HTTPConnector.ConnectionTimeout (ACE gives
	// milliseconds): how long a connection may take to send its request.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is HTTPConnector.KeepAliveTimeout (milliseconds).
	IdleTimeout time.Duration
}

// Result is ACE's part of one serverconf document.
type Result struct {
	Mapped Mapped
	// Ignored lists, sorted, the dotted paths of ACE's keys that have no
	// effect in Sluice (e.g. "RestAdminListener.port").
	Ignored []string
}

// Split reads ACE's keys of the document's root mapping. Sluice's own
// root keys (SluiceKeys) are left to the caller's strict decoding. A lower-case key that is neither Sluice's nor an ACE
// scalar is an error, so that a misspelt Sluice setting is not silently
// taken for an ACE one. Errors give the line, never a value.
func Split(root *yaml.Node) (Result, error) {
	var r Result
	if root == nil || root.Kind != yaml.MappingNode {
		return r, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		switch {
		case key == "trace" && v.Kind == yaml.ScalarNode:
			// ACE's service trace level; Sluice's trace is a mapping.
			switch v.Value {
			case "debug", "debugTrace":
				r.Mapped.LogLevel = "debug"
			case "none", "":
			default:
				return r, fmt.Errorf("line %d: trace must be none, debug or debugTrace (App Connect) or a mapping of Sluice's trace settings", v.Line)
			}
		case IsSluiceKey(key):
		case isACESection(key) && v.Kind == yaml.ScalarNode && !isNull(v):
			// ACE's sections are mappings; its scalars are lower-case.
			return r, fmt.Errorf("line %d: unknown field: App Connect's sections (capitalised) hold mappings", k.Line)
		case isACESection(key):
			if err := r.section(key, v); err != nil {
				return r, err
			}
		case v.Kind == yaml.ScalarNode || v.Kind == yaml.AliasNode:
			// ACE's top level holds scalars such as serverFullName,
			// defaultQueueManager or forceServerHTTPS.
			r.Ignored = append(r.Ignored, key)
		default:
			// The key is not quoted, as in the strict decoding's errors: a
			// line pasted in the wrong place may be a secret.
			return r, fmt.Errorf("line %d: unknown field: Sluice's settings are log, http, flows, shutdown, trace and values, and App Connect's sections start with a capital letter", k.Line)
		}
	}
	sort.Strings(r.Ignored)
	return r, nil
}

func isACESection(key string) bool {
	for _, c := range key {
		return unicode.IsUpper(c)
	}
	return false
}

// section reads one of ACE's top-level sections.
func (r *Result) section(key string, v *yaml.Node) error {
	switch key {
	case "Defaults":
		return r.mapping(key, v, func(k string, n *yaml.Node) (bool, error) {
			if k != "policyProject" {
				return false, nil
			}
			s, err := scalar(n, "Defaults.policyProject")
			r.Mapped.PolicyProject = s
			return true, err
		})
	case "UserVariables":
		if v.Kind != yaml.MappingNode {
			if isNull(v) {
				return nil
			}
			return fmt.Errorf("line %d: UserVariables must be a mapping of names to values", v.Line)
		}
		vars := map[string]any{}
		if err := v.Decode(&vars); err != nil {
			return fmt.Errorf("line %d: UserVariables: names must be strings", v.Line)
		}
		if r.Mapped.UserVariables == nil {
			r.Mapped.UserVariables = map[string]any{}
		}
		for name, val := range vars {
			r.Mapped.UserVariables[name] = val
		}
		return nil
	case "Log":
		return r.mapping(key, v, func(k string, n *yaml.Node) (bool, error) {
			if k != "outputFormat" {
				return false, nil
			}
			s, err := scalar(n, "Log.outputFormat")
			switch s {
			case "ibmjson", "json":
				r.Mapped.LogFormat = "json"
			case "idText", "text":
				r.Mapped.LogFormat = "text"
			default:
				if err == nil {
					err = fmt.Errorf("line %d: Log.outputFormat must be idText, text, ibmjson or json", n.Line)
				}
			}
			return true, err
		})
	case "HTTPConnector":
		return r.mapping(key, v, r.httpConnector(key))
	case "ResourceManagers":
		// ACE 12 and 13 keep the connectors here; older files at the top.
		return r.mapping(key, v, func(k string, n *yaml.Node) (bool, error) {
			if k != "HTTPConnector" {
				return false, nil
			}
			return true, r.mapping(key+"."+k, n, r.httpConnector(key+"."+k))
		})
	}
	r.ignoreAll(key, v)
	return nil
}

// httpConnector maps the flows' plain HTTP listener settings. Its port
// is not one of them: the control plane gives each replica its port.
func (r *Result) httpConnector(path string) func(string, *yaml.Node) (bool, error) {
	return func(k string, n *yaml.Node) (bool, error) {
		switch k {
		case "MaxPostSize":
			b, err := integer(n, path+"."+k)
			if err == nil && b > 0 { // ACE's -1 is "no limit": Sluice keeps one
				r.Mapped.MaxBodyBytes = b
				return true, nil
			}
			return false, err
		case "ConnectionTimeout":
			ms, err := integer(n, path+"."+k)
			if err == nil && ms > 0 {
				r.Mapped.ReadHeaderTimeout = time.Duration(ms) * time.Millisecond
				return true, nil
			}
			return false, err
		case "KeepAliveTimeout":
			ms, err := integer(n, path+"."+k)
			if err == nil && ms > 0 {
				r.Mapped.IdleTimeout = time.Duration(ms) * time.Millisecond
				return true, nil
			}
			return false, err
		}
		return false, nil
	}
}

// mapping walks a section's keys: use says whether it took a key;
// what it did not take is ignored.
func (r *Result) mapping(path string, v *yaml.Node, use func(key string, n *yaml.Node) (bool, error)) error {
	if v.Kind != yaml.MappingNode {
		if !isNull(v) {
			r.Ignored = append(r.Ignored, path)
		}
		return nil
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, n := v.Content[i].Value, v.Content[i+1]
		took, err := use(k, n)
		if err != nil {
			return err
		}
		if !took {
			r.ignoreAll(path+"."+k, n)
		}
	}
	return nil
}

// ignoreAll names every leaf under path.
func (r *Result) ignoreAll(path string, v *yaml.Node) {
	switch {
	case isNull(v):
	case v.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(v.Content); i += 2 {
			r.ignoreAll(path+"."+v.Content[i].Value, v.Content[i+1])
		}
	default:
		r.Ignored = append(r.Ignored, path)
	}
}

func isNull(v *yaml.Node) bool {
	return v.Kind == yaml.ScalarNode && v.Tag == "!!null" || v.Kind == yaml.MappingNode && len(v.Content) == 0
}

func scalar(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("line %d: %s must be a single value", n.Line, path)
	}
	return n.Value, nil
}

// integer reads a number that ACE files give either bare or quoted.
func integer(n *yaml.Node, path string) (int64, error) {
	s, err := scalar(n, path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("line %d: %s must be a whole number", n.Line, path)
	}
	return v, nil
}

// Describe renders an Ignored list for a condition or a log line,
// bounded: the first few keys and how many more.
func Describe(ignored []string) string {
	const shown = 12
	if len(ignored) <= shown {
		return strings.Join(ignored, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ignored[:shown], ", "), len(ignored)-shown)
}

// Parse reads one serverconf document's ACE part, for callers (the
// control plane) that do not decode Sluice's settings themselves.
func Parse(data []byte) (Result, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Result{}, errors.New(secret.ScrubYAML(err))
	}
	if len(doc.Content) == 0 {
		return Result{}, nil
	}
	return Split(doc.Content[0])
}

// SluiceKeys are the root keys of Sluice's own settings.
var SluiceKeys = []string{"log", "http", "flows", "shutdown", "trace", "values"}

// IsSluiceKey says whether key is one of SluiceKeys.
func IsSluiceKey(key string) bool {
	for _, k := range SluiceKeys {
		if k == key {
			return true
		}
	}
	return false
}
