package runtime_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-dev/sluice/internal/connectors/mqttconn"
	"github.com/sluice-dev/sluice/internal/flow"
)

// TestMQTTTriggerAndPublish: a topic-triggered flow (QoS 1, persistent
// session) maps each message and publishes it on through Mosquitto, over
// MQTT 3.1.1 and over MQTT 5 (where the incoming user properties are the
// flow's headers).
func TestMQTTTriggerAndPublish(t *testing.T) {
	for _, v := range []string{"4", "5"} {
		t.Run("protocolVersion "+v, func(t *testing.T) { testMQTT(t, v) })
	}
}

func testMQTT(t *testing.T, version string) {
	b := make([]byte, 4)
	rand.Read(b)
	topic := "sluice/rt/" + hex.EncodeToString(b)
	id := "sluice-rt-" + hex.EncodeToString(b)
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:1883").SetClientID("t-" + hex.EncodeToString(b)))
	if tok := cl.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("Mosquitto: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	out := make(chan mqtt.Message, 4)
	if tok := cl.Subscribe(topic+"/out", 1, func(_ mqtt.Client, m mqtt.Message) { out <- m }); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: plant\n",
		"flows/temp.yaml": `flow: temp
trigger:
  mqtt: {connection: plant, topic: '` + topic + `/in/+', clientId: ` + id + `}
steps:
  - publish: {connection: plant, topic: '` + topic + `/out', body: '{celsius: .body.c, from: .source.topic, unit: .headers.unit}'}
`,
	})
	conf := configDir(t, map[string]string{"policyproject/Connections/plant.yaml": "type: mqtt\nurl: tcp://127.0.0.1:1883\nprotocolVersion: " + version + "\n"})
	p := startRuntime(t, "--bar", buildBARInProcess(t, proj), "--config-dir", conf)
	var got map[string]any
	eventually(t, "a mapped message", func() bool {
		if version == "5" {
			// The test's own MQTT 5 publisher, with a user property.
			pub := mqttconn.NewPool(nil)
			defer pub.Close()
			c5 := &flow.Connection{Name: "t", Type: "mqtt", URL: "tcp://127.0.0.1:1883", Options: map[string]any{"protocolVersion": 5}}
			if _, err := pub.Publish(context.Background(), c5, &flow.Outgoing{Topic: topic + "/in/s1", QoS: 1, Body: []byte(`{"c": 21.5}`), Headers: map[string]string{"unit": "C"}}); err != nil {
				t.Fatal(err)
			}
		} else {
			cl.Publish(topic+"/in/s1", 1, false, `{"c": 21.5}`).WaitTimeout(waitLong)
		}
		select {
		case m := <-out:
			json.Unmarshal(m.Payload(), &got)
			return true
		case <-time.After(200 * time.Millisecond):
			return false // the runtime's subscription may not be there yet
		}
	})
	if got["celsius"] != 21.5 || got["from"] != topic+"/in/s1" || (version == "5") != (got["unit"] == "C") {
		t.Fatalf("out %v", got)
	}
	metrics := string(get(t, p.adminURL("/metrics")).body)
	if !strings.Contains(metrics, `sluice_trigger_messages_total{flow="temp",outcome="acked",project="plant",trigger="mqtt"}`) {
		t.Errorf("metrics lack the mqtt trigger\n%s", grepLines(metrics, "sluice_trigger"))
	}
	// Remove the test's persistent session.
	clean := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:1883").SetClientID(id).SetCleanSession(true))
	p.signal(syscall.SIGTERM)
	p.wait()
	if tok := clean.Connect(); tok.WaitTimeout(waitLong) {
		clean.Disconnect(100)
	}
}
