package main

// AMQP → map → AMQP: an amqp trigger (prefetch maxInFlight, ack after the
// flow) and a publish with publisher confirms, next to a hand-written
// amqp091-go consumer doing the same — confirm before ack, one publish at
// a time, as the runtime's publish step does.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func baselineAMQP(u, prefix string) {
	conn, err := amqp.Dial(u)
	check(err)
	in, err := conn.Channel()
	check(err)
	check(in.Qos(64, 0, false))
	out, err := conn.Channel()
	check(err)
	check(out.Confirm(false))
	deliveries, err := in.Consume(prefix+".in", "", false, false, false, false, nil)
	check(err)
	fmt.Println("ready")
	go func() {
		for d := range deliveries {
			var o order
			if json.Unmarshal(d.Body, &o) != nil {
				d.Nack(false, false)
				continue
			}
			body, _ := json.Marshal(priced{ID: o.ID, Total: float64(o.Qty) * o.Price, T: o.T})
			dc, err := out.PublishWithDeferredConfirmWithContext(context.Background(), "", prefix+".out", true, false,
				amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent, ContentType: "application/json"})
			if err != nil || !dc.Wait() {
				d.Nack(false, true)
				continue
			}
			d.Ack(false)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	conn.Close()
}

func driveAMQP(u, sluice, cpu string, n, rounds int) error {
	conn, err := amqp.Dial(u)
	if err != nil {
		return fmt.Errorf("RabbitMQ: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	id := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	rtPrefix, basePrefix := "msgbench."+id+".rt", "msgbench."+id+".base"
	for _, p := range []string{rtPrefix, basePrefix} {
		for _, q := range []string{p + ".in", p + ".out"} {
			if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
				return err
			}
			defer ch.QueueDelete(q, false, false, false)
		}
	}
	tmp, err := os.MkdirTemp("", "msgbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	proj := filepath.Join(tmp, "proj")
	write(filepath.Join(proj, "sluice.yaml"), "name: msgbench\n")
	write(filepath.Join(proj, "flows", "price.yaml"), fmt.Sprintf(`flow: price
trigger:
  amqp: {connection: rabbit, queue: %s.in, maxInFlight: 64}
steps:
  - map: '%s'
  - publish: {connection: rabbit, routingKey: %s.out}
`, rtPrefix, mapStep, rtPrefix))
	barFile := filepath.Join(tmp, "msgbench.bar")
	if out, err := exec.Command(sluice, "bar", "build", proj, "-o", barFile).CombinedOutput(); err != nil {
		return fmt.Errorf("bar build: %v\n%s", err, out)
	}
	pu, _ := url.Parse(u)
	pass, _ := pu.User.Password()
	user := pu.User.Username()
	pu.User = nil
	conf := filepath.Join(tmp, "conf")
	write(filepath.Join(conf, "serverconf", "bench.yaml"), "log:\n  level: warn\n")
	write(filepath.Join(conf, "policyproject", "Bench", "rabbit.yaml"), "type: amqp\nurl: "+pu.String()+"\ncredentials: rabbit\n")
	write(filepath.Join(conf, "setdbparms", "creds.txt"), "rabbit "+user+" "+pass+"\n")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rt := &target{name: "runtime", prefix: rtPrefix, cmd: pinned(cpu, sluice, "runtime", "--bar", barFile, "--config-dir", conf, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")}
	base := &target{name: "baseline", prefix: basePrefix, cmd: pinned(cpu, self, "-broker", "amqp", "-amqp", u, "-consume", basePrefix)}
	for _, t := range []*target{rt, base} {
		t.cmd.Stderr = os.Stderr
		if err := t.cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		defer func() { t.cmd.Process.Signal(syscall.SIGTERM); t.cmd.Wait() }()
	}
	start := time.Now()
	// Queues keep what is published before the consumer: one probe each.
	for _, t := range []*target{rt, base} {
		if _, err := measureAMQP(ch, conn, t, start, 1, 0, 60*time.Second); err != nil {
			return fmt.Errorf("%s never answered: %w", t.name, err)
		}
	}
	fmt.Printf("# Sluice message benchmark: amqp trigger → map → AMQP publish (confirmed), %s\n", time.Now().UTC().Format(time.RFC3339))
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("# %d messages per round, %d rounds each, consumers pinned to CPU %q; load average %s", n, rounds, cpu, load)
	results := map[string][]round{}
	for r := range rounds + 1 {
		for _, t := range []*target{rt, base} {
			res, err := measureAMQP(ch, conn, t, start, n, 0, 120*time.Second)
			if err != nil {
				return err
			}
			if r > 0 {
				results[t.name] = append(results[t.name], res.round)
				fmt.Printf("round %d %-8s %8.0f msg/s  %6.1f µs CPU/msg  lost %d\n", r, t.name, res.round.rate, res.round.cpuUs, res.round.lost)
			}
		}
	}
	p99 := map[string]time.Duration{}
	for _, t := range []*target{rt, base} {
		res, err := measureAMQP(ch, conn, t, start, 1000, 500, 60*time.Second)
		if err != nil {
			return err
		}
		p99[t.name] = res.p99
	}
	report(results, p99, "500 msg/s")
	return nil
}

func measureAMQP(ch *amqp.Channel, conn *amqp.Connection, t *target, start time.Time, count, rate int, limit time.Duration) (measured, error) {
	rc, err := conn.Channel()
	if err != nil {
		return measured{}, err
	}
	defer rc.Close()
	deliveries, err := rc.Consume(t.prefix+".out", "", true, false, false, false, nil)
	if err != nil {
		return measured{}, err
	}
	cpu0 := cpuTime(t.cmd.Process.Pid)
	first := time.Now()
	go func() {
		for i := range count {
			if rate > 0 {
				time.Sleep(time.Until(first.Add(time.Duration(i) * time.Second / time.Duration(rate))))
			}
			body := fmt.Appendf(nil, `{"id":%d,"qty":%d,"price":%.2f,"t":%d}`, i, 1+i%7, 9.99, time.Since(start).Microseconds())
			ch.Publish("", t.prefix+".in", false, false, amqp.Publishing{Body: body, ContentType: "application/json"})
		}
	}()
	var lat []time.Duration
	var last time.Time
	timeout := time.After(limit)
	for len(lat) < count {
		select {
		case d := <-deliveries:
			var p priced
			json.Unmarshal(d.Body, &p)
			last = time.Now()
			lat = append(lat, last.Sub(start)-time.Duration(p.T)*time.Microsecond)
			continue
		case <-timeout:
		}
		break
	}
	time.Sleep(20 * time.Millisecond)
	cpu1 := cpuTime(t.cmd.Process.Pid)
	if len(lat) == 0 {
		return measured{}, fmt.Errorf("%s: nothing came back", t.name)
	}
	var m measured
	m.rate = float64(len(lat)) / last.Sub(first).Seconds()
	m.cpuUs = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(len(lat))
	m.lost = count - len(lat)
	slices.Sort(lat)
	m.p99 = lat[(len(lat)*99+99)/100-1]
	return m, nil
}
