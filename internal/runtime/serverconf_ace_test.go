package runtime

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/serverconf"
)

// aceServerConf is an App Connect Enterprise 12/13 server.conf.yaml
// overrides file with the sections such files carry.
const aceServerConf = `serverFullName: ''
defaultQueueManager: ''
trace: 'debug'
Defaults:
  defaultApplication: ''
  policyProject: 'JDBCPolicies'
  Policies:
    HTTPSConnector: 'HTTPS'
UserVariables:
  region: 'eu-de'
  retries: 3
Log:
  consoleLog: true
  outputFormat: 'ibmjson'
  additionalJsonElements: ''
AdminLog:
  enabled: true
  fileLogRetentionPeriod: 30
RestAdminListener:
  port: 7600
  host: 'localhost'
Security:
  Permissions:
    admin: 'read+:write+:execute+'
ResourceManagers:
  HTTPConnector:
    ListenerPort: 7800
    MaxPostSize: '2097152'
    ConnectionTimeout: 15000
    KeepAliveTimeout: 45000
  JVM:
    jvmMaxHeapSize: 536870912
HTTPSConnector:
  ListenerPort: 7843
Statistics:
  Snapshot:
    publicationOn: 'active'
    outputFormat: 'json'
Events:
  OperationalEvents:
    MQ:
      enabled: false
Monitoring:
`

// App Connect's server.conf.yaml is accepted whole: the keys with a
// meaning in Sluice take effect, every other leaf is listed as ignored,
// and Sluice's own keys beside them win.
func TestServerconfSpeaksACE(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"serverconf/ace.yaml":                         aceServerConf,
		"policyproject/tea/JDBCPolicies/TEAJDBC.yaml": "url: postgres://db/tea\n",
		"policyproject/other/Legacy/TEAJDBC.yaml":     "url: postgres://old/tea\n",
	})
	c, err := LoadConfigDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Settings
	if s.Log.Level != "debug" || s.Log.Format != "json" || s.HTTP.MaxBodyBytes != 2097152 ||
		s.HTTP.ReadHeaderTimeout != 15*time.Second || s.HTTP.IdleTimeout != 45*time.Second {
		t.Errorf("mapped settings: log %s/%s, body %d, read header %s, idle %s", s.Log.Level, s.Log.Format,
			s.HTTP.MaxBodyBytes, s.HTTP.ReadHeaderTimeout, s.HTTP.IdleTimeout)
	}
	if c.Flow.Values["region"] != "eu-de" || c.Flow.Values["retries"] != 3 {
		t.Errorf("UserVariables did not reach .config: %v", c.Flow.Values)
	}
	if c.PolicyProject != "JDBCPolicies" || c.Flow.Policies["TEAJDBC"]["url"] != "postgres://db/tea" ||
		c.Flow.Policies["{Legacy}:TEAJDBC"]["url"] != "postgres://old/tea" {
		t.Errorf("default policy project %q: TEAJDBC %v, {Legacy}:TEAJDBC %v", c.PolicyProject,
			c.Flow.Policies["TEAJDBC"], c.Flow.Policies["{Legacy}:TEAJDBC"])
	}
	want := []string{"AdminLog.enabled", "AdminLog.fileLogRetentionPeriod", "Defaults.Policies.HTTPSConnector",
		"Defaults.defaultApplication", "Events.OperationalEvents.MQ.enabled", "HTTPSConnector.ListenerPort",
		"Log.additionalJsonElements", "Log.consoleLog", "ResourceManagers.HTTPConnector.ListenerPort",
		"ResourceManagers.JVM.jvmMaxHeapSize", "RestAdminListener.host", "RestAdminListener.port",
		"Security.Permissions.admin", "Statistics.Snapshot.outputFormat", "Statistics.Snapshot.publicationOn",
		"defaultQueueManager", "serverFullName"}
	var got []string
	for _, k := range c.Ignored {
		got = append(got, strings.TrimPrefix(k, "serverconf/ace.yaml: "))
	}
	if !slices.Equal(got, want) {
		t.Errorf("ignored keys:\n got %v\nwant %v", got, want)
	}
}

// Sluice's keys in the same file win over App Connect's, and a later
// file overrides an earlier one whichever dialect either speaks.
func TestServerconfSluiceKeysWinOverACE(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"serverconf/a.yaml": "Log:\n  outputFormat: idText\nlog:\n  format: json\nUserVariables:\n  a: ace\n  b: ace\nvalues:\n  a: sluice\n",
		"serverconf/b.yaml": "trace:\n  bufferBytes: 4096\nResourceManagers:\n  HTTPConnector:\n    MaxPostSize: -1\n",
	})
	c, err := LoadConfigDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings.Log.Format != "json" || c.Flow.Values["a"] != "sluice" || c.Flow.Values["b"] != "ace" {
		t.Errorf("log format %s, values %v; want json and a=sluice b=ace", c.Settings.Log.Format, c.Flow.Values)
	}
	if c.Settings.Trace.BufferBytes != 4096 || c.Settings.HTTP.MaxBodyBytes != DefaultSettings().HTTP.MaxBodyBytes {
		t.Errorf("trace buffer %d, body limit %d: want 4096 and the default (ACE's -1 means no limit; Sluice keeps one)",
			c.Settings.Trace.BufferBytes, c.Settings.HTTP.MaxBodyBytes)
	}
	if !slices.Equal(c.Ignored, []string{"serverconf/b.yaml: ResourceManagers.HTTPConnector.MaxPostSize"}) {
		t.Errorf("ignored %v", c.Ignored)
	}
}

// The IBM pipeline's serverconf, exactly as it sends it, loads.
func TestServerconfIBMPipelineDefaults(t *testing.T) {
	dir := writeDir(t, map[string]string{"serverconf/default-policy-project.yaml": "Defaults:\n  policyProject: 'JDBCPolicies'\n"})
	c, err := LoadConfigDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.PolicyProject != "JDBCPolicies" || len(c.Ignored) != 0 {
		t.Errorf("policy project %q, ignored %v", c.PolicyProject, c.Ignored)
	}
}

// serverconf's list of Sluice's keys is the Settings type's.
func TestServerconfKnowsSluiceKeys(t *testing.T) {
	var tags []string
	st := reflect.TypeOf(Settings{})
	for i := range st.NumField() {
		tags = append(tags, strings.Split(st.Field(i).Tag.Get("yaml"), ",")[0])
	}
	if !slices.Equal(tags, serverconf.SluiceKeys) {
		t.Errorf("Settings keys %v, serverconf.SluiceKeys %v", tags, serverconf.SluiceKeys)
	}
}

// A policy project of App Connect's *.policyxml files: JDBCProviders
// policies become connections by name and as {project}:name; the types
// without a Sluice connection are listed as ignored; a broken file stops
// the load naming it.
func TestPolicyXMLBecomesConnections(t *testing.T) {
	const xml = `<policies><policy policyType="JDBCProviders" policyName="TEAJDBC"><databaseType>PostgreSQL</databaseType>
<serverName>db</serverName><databaseName>tea</databaseName><securityIdentity>tea</securityIdentity></policy>
<policy policyType="MQEndpoint" policyName="QM"><queueManagerName>QM1</queueManagerName></policy></policies>`
	dir := writeDir(t, map[string]string{
		"policyproject/tea-jdbc-policies/JDBCPolicies/TEAJDBC.policyxml": xml,
		"policyproject/tea-jdbc-policies/JDBCPolicies/policy.descriptor": "<descriptor/>",
	})
	c, err := LoadConfigDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "postgres", "url": "postgres://db:5432/tea", "credentials": "jdbc::tea"}
	if !reflect.DeepEqual(c.Flow.Policies["TEAJDBC"], want) || !reflect.DeepEqual(c.Flow.Policies["{JDBCPolicies}:TEAJDBC"], want) {
		t.Errorf("policies %v", c.Flow.Policies)
	}
	if c.PolicyCount() != 1 {
		t.Errorf("%d policies counted; want 1 (TEAJDBC, under two names)", c.PolicyCount())
	}
	if len(c.Ignored) != 1 || !strings.Contains(c.Ignored[0], "policy QM (MQEndpoint)") {
		t.Errorf("ignored %v", c.Ignored)
	}
	_, err = LoadConfigDir(writeDir(t, map[string]string{"policyproject/p/JDBCPolicies/Bad.policyxml": "<policies><policy"}))
	if err == nil || !strings.Contains(err.Error(), "policyproject/p/JDBCPolicies/Bad.policyxml: line 1: not well-formed XML") {
		t.Errorf("broken policyxml: %v", err)
	}
}
