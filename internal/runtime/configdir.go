package runtime

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/acepolicy"
	"github.com/sluice-dev/sluice/internal/egress"
	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/serverconf"
)

// The directories of --config-dir, one per configuration type. The
// control plane materialises a runtime's configurations into exactly this
// layout (docs/runtime.md); a developer can write it by hand.
const (
	dirSetdbparms = "setdbparms"            // *.txt: lines `resource user password`
	dirServerconf = "serverconf"            // *.yaml: Settings, merged in name order
	dirGeneric    = "generic"               // <name>/…: files flows read (Config.Files)
	dirTruststore = "truststorecertificate" // *.pem, *.crt: CAs for outbound TLS
	dirPolicies   = "policyproject"         // <project>/<policy>.yaml: connection definitions
)

// Settings are the runtime settings of the serverconf configuration.
// Zero fields take the defaults of DefaultSettings.
type Settings struct {
	Log struct {
		Level  string `yaml:"level"`  // debug, info, warn, error
		Format string `yaml:"format"` // json, text
	} `yaml:"log"`
	HTTP struct {
		MaxBodyBytes      int64         `yaml:"maxBodyBytes"`
		ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
		// ReadTimeout bounds reading a whole request, body included, so
		// a client trickling a body cannot hold a connection forever.
		ReadTimeout time.Duration `yaml:"readTimeout"`
		IdleTimeout time.Duration `yaml:"idleTimeout"`
		// WriteTimeout is how long writing an answer may take once the
		// flow has produced it.
		WriteTimeout time.Duration `yaml:"writeTimeout"`
	} `yaml:"http"`
	Flows struct {
		// Timeout is the default per-flow timeout; a flow's own
		// `timeout:` wins.
		Timeout time.Duration `yaml:"timeout"`
		// MaxInFlight bounds the runs of one flow at a time, counting
		// runs that outlived their timeout: a flow that hangs fills its
		// own quota and is refused with 503 instead of eating the process.
		MaxInFlight int `yaml:"maxInFlight"`
	} `yaml:"flows"`
	Shutdown struct {
		Timeout time.Duration `yaml:"timeout"` // how long a drain may take
	} `yaml:"shutdown"`
	Trace TraceSettings `yaml:"trace"`
	// Values are the user variables flows see as .config.
	Values map[string]any `yaml:"values"`
}

// TraceSettings are Sluice's trace settings. In an App Connect file,
// `trace:` is a scalar (ACE's service trace level), which package
// serverconf reads; it leaves these settings as they are.
type TraceSettings struct {
	BufferBytes int `yaml:"bufferBytes"` // per trace type, oldest events dropped first
}

// UnmarshalYAML decodes the mapping strictly, as the rest of the file.
func (t *TraceSettings) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: trace must be a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value != "bufferBytes" {
			return fmt.Errorf("line %d: field %s not found in trace settings (bufferBytes)", k.Line, strconv.Quote(k.Value))
		}
		if err := v.Decode(&t.BufferBytes); err != nil {
			return fmt.Errorf("line %d: trace.bufferBytes must be a whole number", v.Line)
		}
	}
	return nil
}

// DefaultSettings returns the settings used where serverconf is silent.
func DefaultSettings() Settings {
	var s Settings
	s.Log.Level = "info"
	s.Log.Format = "json"
	s.HTTP.MaxBodyBytes = 4 << 20
	s.HTTP.ReadHeaderTimeout = 10 * time.Second
	s.HTTP.ReadTimeout = time.Minute
	s.HTTP.IdleTimeout = 2 * time.Minute
	s.HTTP.WriteTimeout = 30 * time.Second
	s.Flows.Timeout = flow.DefaultTimeout
	s.Flows.MaxInFlight = 256
	s.Shutdown.Timeout = 30 * time.Second
	s.Trace.BufferBytes = 16 << 20
	return s
}

// LogLevel parses Log.Level.
func (s *Settings) LogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s.Log.Level)); err != nil {
		// The value is not quoted: the file may hold secrets elsewhere,
		// and a misplaced one would land here.
		return 0, errors.New("runtime: serverconf: log.level must be debug, info, warn or error")
	}
	return l, nil
}

func (s *Settings) validate() error {
	if _, err := s.LogLevel(); err != nil {
		return err
	}
	switch {
	case s.Log.Format != "json" && s.Log.Format != "text":
		return errors.New("runtime: serverconf: log.format must be json or text")
	case s.HTTP.MaxBodyBytes <= 0:
		return errors.New("runtime: serverconf: http.maxBodyBytes must be positive")
	case s.HTTP.ReadHeaderTimeout <= 0 || s.HTTP.ReadTimeout <= 0 || s.HTTP.IdleTimeout <= 0 || s.HTTP.WriteTimeout <= 0:
		return errors.New("runtime: serverconf: http timeouts must be positive")
	case s.Flows.Timeout <= 0:
		return errors.New("runtime: serverconf: flows.timeout must be positive")
	case s.Flows.MaxInFlight <= 0:
		return errors.New("runtime: serverconf: flows.maxInFlight must be positive")
	case s.Shutdown.Timeout <= 0:
		return errors.New("runtime: serverconf: shutdown.timeout must be positive")
	case s.Trace.BufferBytes <= 0:
		return errors.New("runtime: serverconf: trace.bufferBytes must be positive")
	}
	return nil
}

// Configuration is what --config-dir gives a runtime.
type Configuration struct {
	Settings Settings
	Flow     *flow.Config
	// Egress is the policy of the http steps' connections, from
	// egress/policy.json (written by the control plane); nil: the
	// default, local addresses closed.
	Egress *egress.Policy
	// Sources lists the files read, for the service trace and the log;
	// it names files, never their content.
	Sources []string
	// TLSCertificates are the keystore configurations' key pairs: with
	// any, the flows are served over HTTPS only.
	TLSCertificates []tls.Certificate
	// PolicyProject is serverconf's Defaults.policyProject (App
	// Connect's key): the project a policy named alone is taken from.
	PolicyProject string
	// Ignored lists what App Connect's files hold that has no effect in
	// Sluice: serverconf keys ("file: Section.key") and policies of types
	// Sluice has no connection for ("file: policy P (MQEndpoint): why").
	Ignored []string
	// policies counts the policies read (PolicyCount).
	policies int
}

// LoadConfigDir reads the configuration directory. An empty dir means no
// configurations: default settings, no credentials. Every problem is
// reported with the file (and line) it is in, and never with a secret.
func LoadConfigDir(dir string) (*Configuration, error) {
	c := &Configuration{Settings: DefaultSettings(), Flow: &flow.Config{}}
	if dir == "" {
		c.Flow.Timeout = c.Settings.Flows.Timeout
		return c, nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("runtime: config dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("runtime: config dir %s is not a directory", dir)
	}
	if err := c.readServerconf(filepath.Join(dir, dirServerconf)); err != nil {
		return nil, err
	}
	if err := c.readSetdbparms(filepath.Join(dir, dirSetdbparms)); err != nil {
		return nil, err
	}
	if err := c.readTruststore(filepath.Join(dir, dirTruststore)); err != nil {
		return nil, err
	}
	if err := c.readKeystore(filepath.Join(dir, dirKeystore)); err != nil {
		return nil, err
	}
	if err := c.readPolicies(filepath.Join(dir, dirPolicies)); err != nil {
		return nil, err
	}
	if err := c.readEgress(filepath.Join(dir, dirEgress, "policy.json")); err != nil {
		return nil, err
	}
	if gen := filepath.Join(dir, dirGeneric); isDir(gen) {
		// os.DirFS follows symbolic links on purpose: Kubernetes mounts
		// secrets and config maps as links into a ..data directory.
		c.Flow.Files = os.DirFS(gen)
		c.Sources = append(c.Sources, dirGeneric+"/")
	}
	c.Flow.Values = c.Settings.Values
	c.Flow.Timeout = c.Settings.Flows.Timeout
	return c, nil
}

// dirEgress holds policy.json, the egress policy the control plane
// pushes: the instance's allow-list and its own deny-list.
const dirEgress = "egress"

func (c *Configuration) readEgress(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: %s: %w", path, err)
	}
	p, err := egress.ParseFile(data)
	if err != nil {
		return fmt.Errorf("runtime: %s: %w", path, err)
	}
	c.Egress = p
	c.Sources = append(c.Sources, dirEgress+"/policy.json")
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// files lists the regular files of dir with one of exts, sorted; a missing
// dir is no configuration of that type.
func files(dir string, exts ...string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: config dir: %w", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue
		}
		ext := strings.ToLower(filepath.Ext(e.Name()))
		for _, want := range exts {
			if ext == want {
				out = append(out, filepath.Join(dir, e.Name()))
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// rel names a config file relative to the config dir in messages.
func rel(p string) string {
	return filepath.ToSlash(filepath.Join(filepath.Base(filepath.Dir(p)), filepath.Base(p)))
}

// readServerconf decodes each serverconf file over the previous ones, so a
// later file overrides only the settings it names (values merge key by
// key). A file may be App Connect's server.conf.yaml: its sections are
// read by package serverconf, the keys with a meaning in Sluice applied
// first, so that Sluice's own keys in the same file win. Unknown Sluice
// keys are errors: a misspelt setting silently ignored is a production
// incident later.
func (c *Configuration) readServerconf(dir string) error {
	names, err := files(dir, ".yaml", ".yml")
	if err != nil {
		return err
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("runtime: %w", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("runtime: %s: %s", rel(name), yamlMessage(err))
		}
		if len(doc.Content) == 0 {
			c.Sources = append(c.Sources, rel(name))
			continue // an empty file: no settings, not an error
		}
		if doc.Content[0].Kind != yaml.MappingNode {
			return fmt.Errorf("runtime: %s: line %d: the document must be a mapping of settings", rel(name), doc.Content[0].Line)
		}
		ace, err := serverconf.Split(doc.Content[0])
		if err != nil {
			return fmt.Errorf("runtime: %s: %w", rel(name), err)
		}
		c.applyACE(ace.Mapped)
		for _, k := range ace.Ignored {
			c.Ignored = append(c.Ignored, rel(name)+": "+k)
		}
		// The strict decode of Sluice's keys: App Connect's land in the
		// inline map, already read above.
		file := struct {
			Settings `yaml:",inline"`
			ACE      map[string]yaml.Node `yaml:",inline"`
		}{Settings: c.Settings}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("runtime: %s: %s", rel(name), yamlMessage(err))
		}
		c.Settings = file.Settings
		c.Sources = append(c.Sources, rel(name))
	}
	if err := c.Settings.validate(); err != nil {
		return err
	}
	if c.Settings.Values != nil {
		// Flows see values as JSON; refuse what JSON cannot hold (maps
		// with non-string keys) here, with the file to blame.
		v, err := jsonValue(c.Settings.Values)
		if err != nil {
			return fmt.Errorf("runtime: serverconf: values: %w", err)
		}
		c.Settings.Values = v.(map[string]any)
	}
	return nil
}

// PolicyCount is how many policies were loaded: each is in Policies by
// name and by {project}:name for each of its projects, and counts once.
func (c *Configuration) PolicyCount() int { return c.policies }

// applyACE applies what App Connect's keys mean in Sluice.
func (c *Configuration) applyACE(m serverconf.Mapped) {
	s := &c.Settings
	if m.PolicyProject != "" {
		c.PolicyProject = m.PolicyProject
	}
	if len(m.UserVariables) > 0 {
		if s.Values == nil {
			s.Values = map[string]any{}
		}
		for k, v := range m.UserVariables {
			s.Values[k] = v
		}
	}
	if m.LogFormat != "" {
		s.Log.Format = m.LogFormat
	}
	if m.LogLevel != "" {
		s.Log.Level = m.LogLevel
	}
	if m.MaxBodyBytes > 0 {
		s.HTTP.MaxBodyBytes = m.MaxBodyBytes
	}
	if m.ReadHeaderTimeout > 0 {
		s.HTTP.ReadHeaderTimeout = m.ReadHeaderTimeout
	}
	if m.IdleTimeout > 0 {
		s.HTTP.IdleTimeout = m.IdleTimeout
	}
}

// yamlMessage renders a YAML error for a person: the line and what is
// wrong, without the data or the Go type it was decoded into.
func yamlMessage(err error) string { return secret.ScrubYAML(err) }

// jsonValue converts what YAML decoded into the JSON data model.
func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			y, err := jsonValue(x)
			if err != nil {
				return nil, err
			}
			out[k] = y
		}
		return out, nil
	case map[any]any:
		return nil, errors.New("map keys must be strings")
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			y, err := jsonValue(x)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case nil, bool, string, int, int64, uint64, float64:
		return v, nil
	}
	// Anything else goes through encoding/json, which knows how to
	// render it or says why not.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, errors.New(secret.Scrub(err.Error()))
	}
	var out any
	return out, json.Unmarshal(b, &out)
}

// readSetdbparms reads credentials. Each non-blank, non-comment line is
// `resource user password` (the password is the rest of the line, so it
// may contain spaces) or App Connect's `mqsisetdbparms -n resource -u user
// -p password`. Errors name file and line, never the line's content.
func (c *Configuration) readSetdbparms(dir string) error {
	names, err := files(dir, ".txt")
	if err != nil {
		return err
	}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("runtime: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		line := 0
		for sc.Scan() {
			line++
			text := strings.TrimSpace(sc.Text())
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			res, cred, err := parseCredential(text)
			if err != nil {
				f.Close()
				return fmt.Errorf("runtime: %s:%d: %w", rel(name), line, err)
			}
			if c.Flow.Credentials == nil {
				c.Flow.Credentials = map[string]flow.Credential{}
			}
			if _, dup := c.Flow.Credentials[res]; dup {
				f.Close()
				return fmt.Errorf("runtime: %s:%d: the line's resource is defined twice", rel(name), line)
			}
			c.Flow.Credentials[res] = cred
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("runtime: %s: %w", rel(name), err)
		}
		c.Sources = append(c.Sources, rel(name))
	}
	return nil
}

func parseCredential(text string) (string, flow.Credential, error) {
	fields := strings.Fields(text)
	if fields[0] == "mqsisetdbparms" {
		var res, user, pw string
		for i := 1; i < len(fields); i++ {
			// Options are not quoted back: a misplaced password would be one.
			if i+1 >= len(fields) {
				return "", flow.Credential{}, fmt.Errorf("mqsisetdbparms: option %d has no value", (i+1)/2)
			}
			switch fields[i] {
			case "-n":
				res = fields[i+1]
			case "-u":
				user = fields[i+1]
			case "-p":
				pw = fields[i+1]
			default:
				return "", flow.Credential{}, fmt.Errorf("mqsisetdbparms: option %d is not -n, -u or -p", (i+1)/2)
			}
			i++
		}
		if res == "" || user == "" || pw == "" {
			return "", flow.Credential{}, errors.New("mqsisetdbparms: want -n resource -u user -p password")
		}
		return res, flow.Credential{User: user, Password: secret.New(pw)}, nil
	}
	if len(fields) < 3 {
		return "", flow.Credential{}, fmt.Errorf("want `resource user password`, found %d field(s)", len(fields))
	}
	// The password is everything after the user, spaces included.
	rest := strings.TrimSpace(text[len(fields[0]):])
	rest = strings.TrimSpace(rest[len(fields[1]):])
	return fields[0], flow.Credential{User: fields[1], Password: secret.New(rest)}, nil
}

// readTruststore adds the PEM certificates to a copy of the system roots:
// a configuration adds trust for a private CA, it does not take away the
// public ones.
func (c *Configuration) readTruststore(dir string) error {
	names, err := files(dir, ".pem", ".crt")
	if err != nil || len(names) == 0 {
		return err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("runtime: %w", err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return fmt.Errorf("runtime: %s: no PEM certificate found", rel(name))
		}
		c.Sources = append(c.Sources, rel(name))
	}
	c.Flow.RootCAs = pool
	return nil
}

// readPolicies reads policyproject/<project>/…/<policy>.yaml (or .yml,
// .json): each file is one named connection definition, found at any depth
// (a policy project arrives as a zip that may hold a top directory). App
// Connect's *.policyxml files are read by package acepolicy: their
// JDBCProviders policies become connections, the other types are listed
// in Ignored. Other files (policy.descriptor) are ignored.
//
// A policy's project is the directory that holds it (App Connect's policy
// project) or the configuration it came in. Flows name a policy alone, or
// App Connect's way as {project}:policy. A name two projects define is
// taken from serverconf's Defaults.policyProject; without one it is an
// error that says so.
func (c *Configuration) readPolicies(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	type policy struct {
		name     string
		def      map[string]any
		src      string
		projects []string // the holding directory, then the configuration
	}
	var found []policy
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && name != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(name))
		if d.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json" && ext != ".policyxml") {
			return nil
		}
		r, _ := filepath.Rel(dir, name)
		parts := strings.Split(filepath.ToSlash(r), "/")
		src := dirPolicies + "/" + filepath.ToSlash(r)
		if len(parts) < 2 {
			return fmt.Errorf("%s: a policy belongs in a policy project directory (%s/<project>/%s)", src, dirPolicies, d.Name())
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		projects := []string{parts[len(parts)-2]}
		if parts[0] != projects[0] {
			projects = append(projects, parts[0])
		}
		if ext == ".policyxml" {
			pols, err := acepolicy.Parse(data)
			if err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
			for _, p := range pols {
				if p.Def == nil {
					c.Ignored = append(c.Ignored, fmt.Sprintf("%s: policy %s (%s): %s", src, p.Name, p.Kind, p.Unsupported))
					continue
				}
				found = append(found, policy{name: p.Name, def: p.Def, src: src, projects: projects})
			}
			c.Sources = append(c.Sources, src)
			return nil
		}
		var def map[string]any
		if err := yaml.Unmarshal(data, &def); err != nil {
			return fmt.Errorf("%s: %s", src, yamlMessage(err))
		}
		v, err := jsonValue(def)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		m, _ := v.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		found = append(found, policy{name: strings.TrimSuffix(d.Name(), filepath.Ext(d.Name())), def: m, src: src, projects: projects})
		c.Sources = append(c.Sources, src)
		return nil
	})
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	c.policies = len(found)
	if len(found) == 0 {
		return nil
	}
	c.Flow.Policies = map[string]map[string]any{}
	byName := map[string][]policy{}
	for _, p := range found {
		name := p.name
		byName[name] = append(byName[name], p)
		for _, proj := range p.projects {
			q := "{" + proj + "}:" + name
			if _, dup := c.Flow.Policies[q]; dup {
				return fmt.Errorf("runtime: %s: policy %s is defined twice in project %s", p.src, name, proj)
			}
			c.Flow.Policies[q] = p.def
		}
	}
	for name, ps := range byName {
		if len(ps) == 1 {
			c.Flow.Policies[name] = ps[0].def
			continue
		}
		var chosen []policy
		for _, p := range ps {
			if c.PolicyProject != "" && slices.Contains(p.projects, c.PolicyProject) {
				chosen = append(chosen, p)
			}
		}
		if len(chosen) != 1 {
			srcs := make([]string, len(ps))
			for i, p := range ps {
				srcs[i] = p.src
			}
			sort.Strings(srcs)
			return fmt.Errorf("runtime: policy %q is defined in %s: name its project in serverconf's Defaults.policyProject, or refer to it as {project}:%s", name, strings.Join(srcs, " and "), name)
		}
		c.Flow.Policies[name] = chosen[0].def
	}
	return nil
}
