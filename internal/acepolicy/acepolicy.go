// Package acepolicy reads App Connect Enterprise policy files
// (*.policyxml, as a policy project holds them) into Sluice connection
// definitions. JDBCProviders policies for PostgreSQL and MySQL-compatible
// databases become `postgres` and `mysql` connections whose credentials
// are the setdbparms resource `jdbc::<securityIdentity>`, as in ACE; the
// other policy types are accepted and reported as having no effect.
package acepolicy

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Policy is one <policy> of a policy file.
type Policy struct {
	Name string // policyName
	Kind string // policyType: JDBCProviders, MQEndpoint, Kafka…
	// Def is the Sluice connection definition (type, url, credentials…);
	// nil when the policy has no effect in Sluice, and Unsupported says
	// why.
	Def         map[string]any
	Unsupported string
}

type xmlField struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

type xmlPolicy struct {
	Kind     string     `xml:"policyType,attr"`
	Name     string     `xml:"policyName,attr"`
	Template string     `xml:"policyTemplate,attr"`
	Fields   []xmlField `xml:",any"`
}

// Parse reads a .policyxml document: <policies><policy …>…</policy></policies>.
// Errors give the line and what is wrong, never a value (a policy file
// may hold a password in a field that should not have one).
func Parse(data []byte) ([]Policy, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var out []Policy
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, _ := dec.InputPos()
			return nil, fmt.Errorf("line %d: not well-formed XML", line)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			if _, end := tok.(xml.EndElement); end {
				depth--
			}
			continue
		}
		depth++
		switch {
		case depth == 1 && se.Name.Local != "policies":
			return nil, fmt.Errorf("the root element is <%s>; an App Connect policy file's is <policies>", bounded(se.Name.Local))
		case depth == 2 && se.Name.Local == "policy":
			line, _ := dec.InputPos()
			var p xmlPolicy
			if err := dec.DecodeElement(&p, &se); err != nil {
				return nil, fmt.Errorf("line %d: the policy is not well-formed XML", line)
			}
			depth--
			pol, err := convert(p)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			out = append(out, pol)
		}
	}
	if depth != 0 {
		return nil, errors.New("the document ends inside an element")
	}
	return out, nil
}

func bounded(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func convert(p xmlPolicy) (Policy, error) {
	if strings.TrimSpace(p.Name) == "" {
		return Policy{}, errors.New("a <policy> has no policyName")
	}
	pol := Policy{Name: strings.TrimSpace(p.Name), Kind: strings.TrimSpace(p.Kind)}
	f := map[string]string{}
	for _, x := range p.Fields {
		f[x.XMLName.Local] = strings.TrimSpace(x.Value)
	}
	switch pol.Kind {
	case "JDBCProviders":
		return jdbc(pol, p.Template, f)
	case "":
		return Policy{}, fmt.Errorf("policy %s has no policyType", pol.Name)
	case "MQEndpoint":
		pol.Unsupported = "IBM MQ is not a Sluice connector"
	case "Kafka":
		pol.Unsupported = "Sluice has no kafka connection yet"
	default:
		pol.Unsupported = "Sluice has no connection of this type"
	}
	return pol, nil
}

// jdbc maps a JDBCProviders policy: the database kind from its type,
// driver or URL format, the address from serverName, portNumber and
// databaseName, the credentials from securityIdentity.
func jdbc(pol Policy, template string, f map[string]string) (Policy, error) {
	hint := strings.ToLower(strings.Join([]string{f["databaseType"], f["type4DriverClassName"], f["connectionUrlFormat"], template}, " "))
	var typ, scheme, port string
	switch {
	case strings.Contains(hint, "postgres"):
		typ, scheme, port = "postgres", "postgres", "5432"
	case strings.Contains(hint, "mysql") || strings.Contains(hint, "mariadb"):
		typ, scheme, port = "mysql", "mysql", "3306"
	default:
		pol.Unsupported = "Sluice's sql step speaks PostgreSQL and MySQL/MariaDB, not this database"
		return pol, nil
	}
	host, db := f["serverName"], f["databaseName"]
	if host == "" || strings.ContainsAny(host, "/@?# ") {
		return Policy{}, fmt.Errorf("JDBCProviders policy %s: serverName must be a host name or address", pol.Name)
	}
	if db == "" || strings.ContainsAny(db, "/?#") {
		return Policy{}, fmt.Errorf("JDBCProviders policy %s: databaseName must name a database", pol.Name)
	}
	if v := f["portNumber"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return Policy{}, fmt.Errorf("JDBCProviders policy %s: portNumber must be 1 to 65535", pol.Name)
		}
		port = v
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: "/" + db}
	pol.Def = map[string]any{"type": typ, "url": u.String()}
	if id := f["securityIdentity"]; id != "" {
		pol.Def["credentials"] = "jdbc::" + id
	}
	if v := f["maxConnectionPoolSize"]; v != "" && v != "0" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			return Policy{}, fmt.Errorf("JDBCProviders policy %s: maxConnectionPoolSize must be 0 to 1000", pol.Name)
		}
		pol.Def["maxConns"] = n
	}
	return pol, nil
}
