// Package configuration owns configurations as a resource: the catalogue of
// configuration types (what each holds and what the runtime does with it),
// the validation of each type's data on write, the layout a runtime's
// configurations are materialised into (the --config-dir of `sluice
// runtime`), and the service behind /api/v1/configurations, which seals the
// data at rest and audits every change. Configuration data is secret: it is
// never returned, logged or put into an error.
package configuration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/secret"
)

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Type is one configuration type.
type Type struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Holds       string `json:"holds"`
	Runtime     string `json:"runtime"`
	Secret      bool   `json:"secret"`
	// validate checks data of this type; nil means no check beyond non-empty.
	validate func(data []byte) error
}

// types lists every type, in the order the API shows them. Names are App
// Connect's, so scripts written for its API need no change.
var types = []Type{
	{Name: "accounts", Holds: "accounts.yaml: connector account credentials (YAML mapping)", Secret: true,
		Description: "Credentials of accounts that connectors use.",
		Runtime:     "written to accounts/<name>.yaml in the runtime's config dir", validate: yamlMapping},
	{Name: "barauth", Holds: `JSON {"authType":"BASIC_AUTH","credentials":{"username":…,"password":…,"caCert":"<PEM>"}} or {"authType":"BEARER_TOKEN","credentials":{"token":…}}`, Secret: true,
		Description: "Credentials for fetching the runtime's BAR files from external https URLs.",
		Runtime:     "used by the control plane when it fetches external barURLs; not given to the runtime", validate: validateBarauth},
	{Name: "generic", Holds: "a zip of files", Secret: true,
		Description: "Arbitrary files flows can read.",
		Runtime:     "unzipped into generic/<name>/ in the runtime's config dir; flows read them", validate: validateZip},
	{Name: "keystore", Holds: "a PKCS#12 or JKS key store, or PEM keys and certificates", Secret: true,
		Description: "Keys and certificates for TLS.",
		Runtime:     "written to keystore/<name>; with one, the runtime serves its flows over HTTPS", validate: validateKeystore},
	{Name: "loopbackdatasource", Holds: "a zip with datasources.json and model files", Secret: true,
		Description: "LoopBack data source definitions.",
		Runtime:     "unzipped into loopbackdatasource/<name>/ in the runtime's config dir", validate: validateZip},
	{Name: "odbc", Holds: "odbc.ini text", Secret: false,
		Description: "ODBC data source definitions.",
		Runtime:     "written to odbc/<name>.ini in the runtime's config dir", validate: validateINI},
	{Name: "policyproject", Holds: "a zip of a policy project: <policy>.yaml (or .json) connection definitions", Secret: false,
		Description: "Named connection definitions (policies) flows refer to.",
		Runtime:     "unzipped into policyproject/<name>/; each file is a policy flows use by name", validate: validateZip},
	{Name: "serverconf", Holds: "server.conf.yaml: App Connect's sections (Defaults, UserVariables, Log, …) and/or Sluice's settings (log, http, flows, values…)", Secret: false,
		Description: "Runtime settings and user variables (visible to flows as .config).",
		Runtime:     "written to serverconf/<name>.yaml; settings merge in name order", validate: yamlMapping},
	{Name: "setdbparms", Holds: "lines `resource user password` or `mqsisetdbparms -n resource -u user -p password`", Secret: true,
		Description: "Credentials by resource name, for flows' outbound calls.",
		Runtime:     "written to setdbparms/<name>.txt; flows name the resource in `auth:`", validate: validateSetdbparms},
	{Name: "truststore", Holds: "a PKCS#12 or JKS trust store, or PEM certificates", Secret: true,
		Description: "Certificates to trust for outbound TLS.",
		Runtime:     "written to truststore/<name> in the runtime's config dir", validate: validateStore},
	{Name: "truststorecertificate", Holds: "one or more PEM certificates", Secret: false,
		Description: "CA certificates added to the runtime's trust for outbound TLS.",
		Runtime:     "written to truststorecertificate/<name>.pem; added to the system roots", validate: validatePEMCerts},
	{Name: "workdiroverride", Holds: "a file applied as a work-dir override", Secret: true,
		Description: "A file placed in the runtime's work dir.",
		Runtime:     "written to workdiroverride/<name> in the runtime's config dir"},
}

// Types returns every configuration type.
func Types() []Type { return append([]Type(nil), types...) }

// Lookup returns the type named name.
func Lookup(name string) (Type, bool) {
	for _, t := range types {
		if t.Name == name {
			return t, true
		}
	}
	return Type{}, false
}

// TypeNames lists the type names, for error messages.
func TypeNames() string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

// ValidationError says what is wrong with a configuration's data, and
// where, without quoting the data (it may be secret).
type ValidationError struct {
	Type string
	Msg  string
}

func (e *ValidationError) Error() string { return e.Type + " data: " + e.Msg }

// Validate checks data against its type.
func Validate(typeName string, data []byte) error {
	t, ok := Lookup(typeName)
	if !ok {
		return &ValidationError{Type: typeName, Msg: fmt.Sprintf("unknown type %q: use one of %s", typeName, TypeNames())}
	}
	if len(data) == 0 {
		return &ValidationError{Type: typeName, Msg: "is empty"}
	}
	if t.validate == nil {
		return nil
	}
	if err := t.validate(data); err != nil {
		return &ValidationError{Type: typeName, Msg: err.Error()}
	}
	switch typeName {
	case "setdbparms", "serverconf", "truststorecertificate", "policyproject", "generic":
		if err := checkWithRuntime(typeName, data); err != nil {
			return &ValidationError{Type: typeName, Msg: err.Error()}
		}
	}
	return nil
}

func yamlMapping(data []byte) error {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("is not valid YAML: %s", secret.ScrubYAML(err))
	}
	if len(n.Content) == 0 {
		return errors.New("is an empty YAML document")
	}
	if root := n.Content[0]; root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: the document must be a YAML mapping (key: value)", root.Line)
	}
	return nil
}

// BarAuth is the decoded data of a barauth configuration.
type BarAuth struct {
	AuthType    string `json:"authType"`
	Credentials struct {
		Username    string `json:"username"`
		Password    string `json:"password"`
		Token       string `json:"token"`
		CACert      string `json:"caCert"`
		InsecureSSL string `json:"insecureSsl"`
	} `json:"credentials"`
	// AppliesTo names where the credentials may be sent: host names
	// (repo.example.com, repo.example.com:8443) or https URL prefixes
	// (https://repo.example.com/bars/). Without it they are sent nowhere:
	// a runtime's barURL could otherwise point them at any server.
	AppliesTo []string `json:"appliesTo"`
	// Name is the configuration's name, for messages; not part of the data.
	Name string `json:"-"`
}

// maxAppliesTo bounds a barauth binding.
const maxAppliesTo = 32

// checkAppliesTo says which entry of a binding is not a host or an https
// URL prefix; it names the entry by index, never by value.
func checkAppliesTo(entries []string) error {
	if len(entries) > maxAppliesTo {
		return fmt.Errorf("appliesTo has %d entries; at most %d", len(entries), maxAppliesTo)
	}
	for i, e := range entries {
		if _, _, _, ok := parseBinding(e); !ok {
			return fmt.Errorf("appliesTo[%d] is not a host name (repo.example.com[:port]) or an https URL prefix (https://repo.example.com/bars/)", i)
		}
	}
	return nil
}

// parseBinding reads one appliesTo entry: a host with an optional port, or
// an https URL prefix (host, optional port, path prefix).
func parseBinding(e string) (host, port, pathPrefix string, ok bool) {
	if e == "" || strings.ContainsAny(e, " \t\r\n?#@") {
		return "", "", "", false
	}
	if !strings.Contains(e, "://") {
		if strings.Contains(e, "/") {
			return "", "", "", false
		}
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", "", false
	}
	p := u.EscapedPath()
	if p != "" && !plainPath(p) {
		return "", "", "", false
	}
	return strings.ToLower(u.Hostname()), u.Port(), p, true
}

// plainPath says whether p has no dot segments and no doubled slashes:
// it reads as the server will resolve it.
func plainPath(p string) bool {
	c := path.Clean(p)
	return c == p || c+"/" == p
}

// Bound says whether the configuration names where it applies.
func (b *BarAuth) Bound() bool { return b != nil && len(b.AppliesTo) > 0 }

// AppliesToURL says whether the credentials may go with a request for raw:
// an https URL whose host (and port, when the entry names one) is an
// entry's and whose path lies under the entry's path. A path with dot
// segments or doubled slashes matches nothing, since servers resolve it
// elsewhere than it reads.
func (b *BarAuth) AppliesToURL(raw string) bool {
	if !b.Bound() {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if !plainPath(p) {
		return false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	for _, e := range b.AppliesTo {
		h, po, prefix, ok := parseBinding(e)
		if !ok || h != host || po != "" && po != port && !(po == "443" && port == "") {
			continue
		}
		if prefix == "" || prefix == "/" || p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/") {
			return true
		}
	}
	return false
}

// ParseBarAuth decodes and checks barauth data.
func ParseBarAuth(data []byte) (BarAuth, error) {
	var b BarAuth
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return b, fmt.Errorf("is not valid JSON (at byte %d)", se.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return b, errors.New("is not valid JSON: it ends too early")
		case strings.Contains(err.Error(), "unknown field"):
			// The field's name is data: say where it ends instead.
			return b, fmt.Errorf("has an unknown field (before byte %d): allowed are authType, appliesTo and credentials.{username,password,token,caCert,insecureSsl}", dec.InputOffset())
		case errors.As(err, &te):
			return b, fmt.Errorf("does not have the barauth shape: %s must be a %s (at byte %d)", cmpOr(te.Field, "the document"), te.Type.Kind(), te.Offset)
		}
		return b, fmt.Errorf("does not have the barauth shape: %s", secret.Scrub(strings.TrimPrefix(err.Error(), "json: ")))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return b, fmt.Errorf("has data after the JSON object (at byte %d)", dec.InputOffset())
	}
	switch b.AuthType {
	case "BASIC_AUTH":
		if b.Credentials.Username == "" || b.Credentials.Password == "" {
			return b, errors.New("BASIC_AUTH needs credentials.username and credentials.password")
		}
	case "BEARER_TOKEN":
		if b.Credentials.Token == "" {
			return b, errors.New("BEARER_TOKEN needs credentials.token")
		}
	default:
		// The value is not quoted back: configuration data stays out of errors.
		return b, errors.New("authType must be BASIC_AUTH or BEARER_TOKEN")
	}
	if b.Credentials.CACert != "" {
		if err := validatePEMCerts([]byte(b.Credentials.CACert)); err != nil {
			return b, fmt.Errorf("credentials.caCert %s", err)
		}
	}
	if v := b.Credentials.InsecureSSL; v != "" && v != "true" && v != "false" {
		return b, errors.New(`credentials.insecureSsl must be "true" or "false"`)
	}
	if err := checkAppliesTo(b.AppliesTo); err != nil {
		return b, err
	}
	return b, nil
}

func validateBarauth(data []byte) error {
	_, err := ParseBarAuth(data)
	return err
}

// validateSetdbparms checks every line without quoting any of it: lines
// hold passwords.
func validateSetdbparms(data []byte) error {
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		text := strings.TrimSpace(line)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		res, err := setdbparmsResource(text)
		if err != nil {
			return fmt.Errorf("line %d: %v", i+1, err)
		}
		if prev, dup := seen[res]; dup {
			return fmt.Errorf("line %d: its resource is already defined on line %d", i+1, prev)
		}
		seen[res] = i + 1
	}
	if len(seen) == 0 {
		return errors.New("has no credential lines")
	}
	return nil
}

// setdbparmsResource returns the resource name of one credential line.
func setdbparmsResource(text string) (string, error) {
	fields := strings.Fields(text)
	if fields[0] == "mqsisetdbparms" {
		var res, user, pw bool
		var name string
		for i := 1; i < len(fields); i += 2 {
			// Options are not quoted back: a misplaced password would be one.
			if i+1 >= len(fields) {
				return "", fmt.Errorf("mqsisetdbparms: option %d has no value", (i+1)/2)
			}
			switch fields[i] {
			case "-n":
				res, name = true, fields[i+1]
			case "-u":
				user = true
			case "-p":
				pw = true
			default:
				return "", fmt.Errorf("mqsisetdbparms: option %d is not -n, -u or -p", (i+1)/2)
			}
		}
		if !res || !user || !pw {
			return "", errors.New("mqsisetdbparms needs -n resource -u user -p password")
		}
		return name, nil
	}
	if len(fields) < 3 {
		return "", fmt.Errorf("expected `resource user password`, found %d field(s)", len(fields))
	}
	return fields[0], nil
}

func validatePEMCerts(data []byte) error {
	n := 0
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %s", n+1, secret.Scrub(err.Error()))
		}
		n++
	}
	if n == 0 {
		return errors.New("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return nil
}

// validateStore accepts JKS (magic FEEDFEED), PKCS#12 (a DER SEQUENCE) or PEM.
func validateStore(data []byte) error {
	switch {
	case bytes.HasPrefix(data, []byte{0xFE, 0xED, 0xFE, 0xED}):
		return nil
	case len(data) > 4 && data[0] == 0x30:
		return nil
	case bytes.Contains(data, []byte("-----BEGIN ")):
		if b, _ := pem.Decode(data); b == nil {
			return errors.New("has a PEM header but no PEM block decodes")
		}
		return nil
	}
	return errors.New("is neither a JKS nor a PKCS#12 store, nor PEM")
}

// validateKeystore refuses what the data alone proves wrong: a PEM key
// store must hold a certificate and the private key that matches it. A
// PKCS#12 store's password is in setdbparms, so the runtime checks it.
func validateKeystore(data []byte) error {
	if err := validateStore(data); err != nil {
		return err
	}
	if !bytes.Contains(data, []byte("-----BEGIN ")) {
		return nil
	}
	if !bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		return errors.New("is PEM without a private key: a keystore holds the certificate chain and its key")
	}
	if _, err := tls.X509KeyPair(data, data); err != nil {
		// crypto/tls names what is wrong without the key material.
		return fmt.Errorf("does not hold a certificate and its private key: %v", err)
	}
	return nil
}

func validateINI(data []byte) error {
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "", strings.HasPrefix(t, "#"), strings.HasPrefix(t, ";"):
		case strings.HasPrefix(t, "["):
			if !strings.HasSuffix(t, "]") {
				return fmt.Errorf("line %d: a section header must end with ]", i+1)
			}
		case !strings.Contains(t, "="):
			return fmt.Errorf("line %d: expected key = value", i+1)
		}
	}
	return nil
}
