package acepolicy

import (
	"reflect"
	"strings"
	"testing"
)

// teaJDBC is a JDBCProviders policy as ACE's toolkit writes one, for
// PostgreSQL (the IBM demo pipeline's TEAJDBC with a PostgreSQL target).
const teaJDBC = `<?xml version="1.0" encoding="UTF-8"?>
<policies>
  <policy policyType="JDBCProviders" policyName="TEAJDBC" policyTemplate="PostgreSQL">
    <databaseName>tea</databaseName>
    <databaseType>PostgreSQL</databaseType>
    <databaseVersion>14</databaseVersion>
    <type4DriverClassName>org.postgresql.Driver</type4DriverClassName>
    <type4DatasourceClassName>org.postgresql.xa.PGXADataSource</type4DatasourceClassName>
    <connectionUrlFormat>jdbc:postgresql://[serverName]:[portNumber]/[databaseName]?user=[user]&amp;password=[password]</connectionUrlFormat>
    <portNumber>5433</portNumber>
    <serverName>db.example</serverName>
    <securityIdentity>tea</securityIdentity>
    <maxConnectionPoolSize>4</maxConnectionPoolSize>
    <useDeployedJars>true</useDeployedJars>
  </policy>
</policies>
`

func TestJDBCProvidersBecomeConnections(t *testing.T) {
	pols, err := Parse([]byte(teaJDBC))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "postgres", "url": "postgres://db.example:5433/tea", "credentials": "jdbc::tea", "maxConns": 4}
	if len(pols) != 1 || pols[0].Name != "TEAJDBC" || pols[0].Kind != "JDBCProviders" || !reflect.DeepEqual(pols[0].Def, want) {
		t.Fatalf("policies %+v; want TEAJDBC %v", pols, want)
	}
	mysql := `<policies><policy policyType="JDBCProviders" policyName="Orders"><databaseType>MySQL</databaseType>
		<serverName>10.0.0.5</serverName><databaseName>orders</databaseName></policy>
		<policy policyType="JDBCProviders" policyName="Maria"><type4DriverClassName>org.mariadb.jdbc.Driver</type4DriverClassName>
		<serverName>::1</serverName><portNumber>3307</portNumber><databaseName>m</databaseName><maxConnectionPoolSize>0</maxConnectionPoolSize></policy></policies>`
	pols, err = Parse([]byte(mysql))
	if err != nil {
		t.Fatal(err)
	}
	if len(pols) != 2 || !reflect.DeepEqual(pols[0].Def, map[string]any{"type": "mysql", "url": "mysql://10.0.0.5:3306/orders"}) ||
		!reflect.DeepEqual(pols[1].Def, map[string]any{"type": "mysql", "url": "mysql://[::1]:3307/m"}) {
		t.Fatalf("mysql policies %+v", pols)
	}
}

// The types Sluice has no connection for are accepted and say why.
func TestOtherPoliciesAreAcceptedWithoutEffect(t *testing.T) {
	doc := `<policies>
	<policy policyType="MQEndpoint" policyName="QM1"><queueManagerName>QM1</queueManagerName></policy>
	<policy policyType="Kafka" policyName="Events"><bootstrapServers>k:9092</bootstrapServers></policy>
	<policy policyType="JDBCProviders" policyName="Legacy"><databaseType>DB2 Universal Database</databaseType></policy>
	<policy policyType="UserDefined" policyName="Props"><x>1</x></policy></policies>`
	pols, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pols {
		if p.Def != nil || p.Unsupported == "" {
			t.Errorf("%s: def %v, unsupported %q", p.Name, p.Def, p.Unsupported)
		}
		got = append(got, p.Name+"/"+p.Kind)
	}
	if strings.Join(got, ",") != "QM1/MQEndpoint,Events/Kafka,Legacy/JDBCProviders,Props/UserDefined" {
		t.Errorf("policies %v", got)
	}
}

// Broken files are refused with the line and what is wrong, quoting no
// value.
func TestBadPolicyFiles(t *testing.T) {
	const canary = "Sup3rS3cretPw9x"
	for doc, says := range map[string]string{
		`<policies><policy policyType="JDBCProviders" policyName="P"><databaseType>PostgreSQL</databaseType><serverName>` + canary + `/x</serverName><databaseName>d</databaseName></policy></policies>`:                         "line 1: JDBCProviders policy P: serverName must be a host name",
		`<policies><policy policyType="JDBCProviders" policyName="P"><databaseType>PostgreSQL</databaseType><serverName>h</serverName></policy></policies>`:                                                                      "databaseName must name a database",
		`<policies><policy policyType="JDBCProviders" policyName="P"><databaseType>PostgreSQL</databaseType><serverName>h</serverName><databaseName>d</databaseName><portNumber>` + canary + `</portNumber></policy></policies>`: "portNumber must be 1 to 65535",
		"<policies>\n<policy policyType=\"MQEndpoint\" policyName=\"Q\"><a>" + canary + "</b></policy></policies>":                                                                                                               "line 2: the policy is not well-formed XML",
		`<policy policyType="MQEndpoint" policyName="Q"/>`:  "the root element is <policy>",
		`<policies><policy policyName="Q"/></policies>`:     "policy Q has no policyType",
		`<policies><policy policyType="Kafka"/></policies>`: "has no policyName",
		`<policies><policy policyType="Kafka" policyName="`: "not well-formed XML",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), canary) {
			t.Errorf("%.60s…: %v; want an error saying %q without the data", doc, err, says)
		}
	}
}
