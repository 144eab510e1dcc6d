package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sluice-dev/sluice/internal/connectors"
	"github.com/sluice-dev/sluice/internal/connectors/amqpconn"
	"github.com/sluice-dev/sluice/internal/connectors/fileconn"
	"github.com/sluice-dev/sluice/internal/connectors/kafkaconn"
	"github.com/sluice-dev/sluice/internal/connectors/mqttconn"
	"github.com/sluice-dev/sluice/internal/connectors/natsconn"
	"github.com/sluice-dev/sluice/internal/connectors/redisconn"
	"github.com/sluice-dev/sluice/internal/connectors/sqlconn"
	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/tracing"
)

// hub owns the runtime's connections to message servers and databases
// (one per policy) and the consumers of its message-source triggers. It
// is the flow engine's flow.Connectors: publish and sql steps reach their
// servers through it.
type hub struct {
	log     *slog.Logger
	nats    *natsconn.Pool
	amqp    *amqpconn.Pool
	mqtt    *mqttconn.Pool
	kafka   *kafkaconn.Pool
	sql     *sqlconn.Pool
	redis   *redisconn.Pool
	metrics *connectorMetrics

	mu        sync.Mutex
	consumers []drainer
	conns     map[string]connState // policy → its connection's last state
}

// connState is what the admin listener's /connections says of a policy:
// its type and whether its connection is up, never its URL or
// credentials.
type connState struct {
	Policy string `json:"policy"`
	Type   string `json:"type"`
	Up     bool   `json:"up"`
}

// stateFor is a pool's OnState: the metric and /connections follow it.
func (h *hub) stateFor(typ string) func(policy string, up bool) {
	return func(policy string, up bool) {
		h.metrics.up(policy, up)
		h.mu.Lock()
		h.conns[policy] = connState{Policy: policy, Type: typ, Up: up}
		h.mu.Unlock()
	}
}

// connections lists the policies' connection states by name.
func (h *hub) connections() []connState {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]connState, 0, len(h.conns))
	for _, c := range h.conns {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b connState) int { return strings.Compare(a.Policy, b.Policy) })
	return out
}

// drainer is a message-source trigger's consumer.
type drainer interface {
	Drain(ctx context.Context) error
}

var _ flow.Connectors = (*hub)(nil)

func newHub(log *slog.Logger, m *connectorMetrics) *hub {
	h := &hub{log: log, nats: natsconn.NewPool(log), amqp: amqpconn.NewPool(log), mqtt: mqttconn.NewPool(log), kafka: kafkaconn.NewPool(log), sql: sqlconn.NewPool(), redis: redisconn.NewPool(), metrics: m}
	h.conns = map[string]connState{}
	h.nats.OnState = h.stateFor("nats")
	h.amqp.OnState = h.stateFor("amqp")
	h.mqtt.OnState = h.stateFor("mqtt")
	h.kafka.OnState = h.stateFor("kafka")
	return h
}

func (h *hub) Publish(ctx context.Context, c *flow.Connection, out *flow.Outgoing) (map[string]any, error) {
	out = withTraceparent(ctx, out)
	switch c.Type {
	case "nats":
		return h.nats.Publish(ctx, c, out)
	case "amqp":
		return h.amqp.Publish(ctx, c, out)
	case "mqtt":
		return h.mqtt.Publish(ctx, c, out)
	case "kafka":
		return h.kafka.Publish(ctx, c, out)
	}
	return nil, fmt.Errorf("no publisher for connections of type %q", c.Type)
}

func (h *hub) SQL(ctx context.Context, c *flow.Connection, tx bool, stmts []flow.Statement) ([]map[string]any, error) {
	return h.sql.Run(ctx, c, tx, stmts)
}

func (h *hub) Redis(ctx context.Context, c *flow.Connection, cmd *flow.RedisCommand) (any, error) {
	return h.redis.Run(ctx, c, cmd)
}

// withTraceparent returns out with the W3C traceparent of ctx's span (the
// publish step's) among its headers, so a consumer continues the trace;
// out itself when ctx is in no trace or the flow set traceparent itself.
// Connectors whose protocol has headers (NATS, AMQP, Kafka, MQTT 5 user
// properties) send it; MQTT 3.1.1 has none and ignores it.
func withTraceparent(ctx context.Context, out *flow.Outgoing) *flow.Outgoing {
	if _, set := out.Headers["traceparent"]; set || !trace.SpanContextFromContext(ctx).IsValid() {
		return out
	}
	cp := *out
	cp.Headers = make(map[string]string, len(out.Headers)+1)
	for k, v := range out.Headers {
		cp.Headers[k] = v
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(cp.Headers))
	return &cp
}

// drain stops every consumer taking messages and waits for the ones in
// flight to finish and be acknowledged, within ctx.
func (h *hub) drain(ctx context.Context) error {
	h.mu.Lock()
	cs := h.consumers
	h.consumers = nil
	h.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Drain(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (h *hub) close() {
	h.nats.Close()
	h.amqp.Close()
	h.mqtt.Close()
	h.kafka.Close()
	h.sql.Close()
	h.redis.Close()
}

// startTriggers subscribes the message-source triggers of the loaded
// flows; handlers run under the runtime's run context, on each
// consumer's maxInFlight workers (connectors.Workers).
func (rt *Runtime) startTriggers() error {
	for _, lf := range rt.flows {
		var c drainer
		var err error
		switch {
		case lf.f.NATS != nil:
			cnt := rt.connMetrics.forTrigger(lf.project, lf.f.Name, "nats")
			c, err = rt.hub.nats.Start(rt.runCtx, lf.f.NATS, lf.ref, rt.messageHandler(lf, "nats"), cnt)
		case lf.f.AMQP != nil:
			cnt := rt.connMetrics.forTrigger(lf.project, lf.f.Name, "amqp")
			c, err = rt.hub.amqp.Start(rt.runCtx, lf.f.AMQP, lf.ref, rt.messageHandler(lf, "amqp"), cnt)
		case lf.f.MQTT != nil:
			cnt := rt.connMetrics.forTrigger(lf.project, lf.f.Name, "mqtt")
			c, err = rt.hub.mqtt.Start(rt.runCtx, lf.f.MQTT, lf.ref, rt.messageHandler(lf, "mqtt"), cnt)
		case lf.f.Kafka != nil:
			cnt := rt.connMetrics.forTrigger(lf.project, lf.f.Name, "kafka")
			c, err = rt.hub.kafka.Start(rt.runCtx, lf.f.Kafka, lf.ref, rt.messageHandler(lf, "kafka"), cnt)
		case lf.f.Directory != nil:
			cnt := rt.connMetrics.forTrigger(lf.project, lf.f.Name, "file")
			// A claim older than twice the flow's timeout (and a margin)
			// belongs to a runtime that died: the file is run again.
			stale := 2*lf.timeout + 30*time.Second
			c, err = fileconn.Start(rt.runCtx, lf.f.Directory, lf.ref, stale, rt.messageHandler(lf, "file"), cnt, rt.hub.log)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("flow %s: %w", lf.ref, err)
		}
		rt.hub.mu.Lock()
		rt.hub.consumers = append(rt.hub.consumers, c)
		rt.hub.mu.Unlock()
	}
	return nil
}

// messageHandler runs a message-source flow on one message, with the
// flow's timeout and in-flight limit, traced and counted like requests.
// Its error, which a trigger may put in a dead-letter header, is
// redacted.
//
// Every trigger calls the handler on goroutines of its own that outlive
// a message, at most maxInFlight of them (connectors.Workers): the run
// executes on the caller's goroutine (runHere), which keeps the stack
// the engine grew, rather than be handed to the runtime's workers and
// waited for, under a deadline that makes no timer unless a step asks
// for Done. A panic is the run's error as in run. A run that ignores
// its deadline is not abandoned: it holds its worker — one of the
// trigger's maxInFlight — until it ends, and its message waits for the
// outcome unacknowledged (JetStream gives it to another worker after
// ackWait meanwhile; a file's claim goes stale), so the trigger never
// has more than maxInFlight runs.
func (rt *Runtime) messageHandler(lf *loadedFlow, trigger string) connectors.Handler {
	return func(ctx context.Context, msg *flow.Message) (*flow.Response, error) {
		start := time.Now()
		seq := rt.reqSeq.Add(1)
		// A traceparent header of the message (a Sluice publish sends one)
		// is continued: the run is a consumer span in the publisher's
		// trace. Without an exporting provider no span is started (it
		// would be a no-op carrying what Extract put in ctx).
		if len(msg.Headers) > 0 {
			ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(msg.Headers))
		}
		var span trace.Span = noop.Span{}
		traced := tracing.On()
		if traced {
			ctx, span = tracing.Tracer().Start(ctx, "flow "+lf.project+"/"+lf.f.Name, trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("sluice.project", lf.project), attribute.String("sluice.flow", lf.f.Name),
					attribute.String("messaging.system", trigger)))
			defer span.End()
		}
		if !lf.acquire() {
			lf.metrics.fail("overload")
			lf.metrics.count(http.StatusServiceUnavailable)
			return nil, errors.New("too many runs of the flow in progress")
		}
		var tr flow.Tracer
		if rt.trace.user.on.Load() {
			tr = &stepTracer{b: rt.trace.user, project: lf.project, requestID: messageRequestID(rt.reqPrefix, seq)}
		}
		// The run context carries the request id, made only if asked.
		rctx := newRunCtx(ctx, lf.timeout)
		rctx.idPrefix, rctx.idSeq = rt.reqPrefix, seq
		resp, err := lf.runHere(rctx, msg, tr)
		rctx.release()
		ctx = rctx // for the failure's log line: its id, ended or not
		status := http.StatusOK
		if err == nil && resp != nil && resp.Status >= 400 {
			// A reply with an error status is the flow saying it failed.
			status = resp.Status
			err = fmt.Errorf("flow replied %d", resp.Status)
			lf.metrics.fail("flow")
		} else if err != nil {
			status = lf.failure(err)
		}
		elapsed := time.Since(start)
		lf.metrics.count(status)
		lf.metrics.duration.Observe(elapsed.Seconds())
		if traced {
			// Not on the no-op span: the attribute's slice would be
			// allocated for nothing on every message.
			span.SetAttributes(attribute.Int("sluice.status", status))
			if err != nil {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
		}
		if rt.trace.service.on.Load() {
			ev := serviceEvent{Event: trigger, Project: lf.project, Flow: lf.f.Name, RequestID: messageRequestID(rt.reqPrefix, seq), Status: status, DurationMs: ms(elapsed)}
			if err != nil {
				ev.Message = err.Error()
			}
			rt.trace.serviceEvent(ev)
		}
		if err != nil {
			rt.log.InfoContext(ctx, "message run failed", "project", lf.project, "flow", lf.f.Name, "status", status, "err", err)
			return nil, errors.New(rt.redact.String(err.Error()))
		}
		return resp, nil
	}
}

// failure counts a failed message run by its cause and gives the status
// its traces and metrics report. (A function of its own: the *flow.Error
// that errors.As fills escapes, and would be allocated for every message,
// failed or not, were it declared in the handler.)
func (lf *loadedFlow) failure(err error) int {
	var fe *flow.Error
	switch {
	case errors.As(err, &fe):
		lf.metrics.fail("flow")
		if fe.Status < 400 || fe.Status > 599 {
			return http.StatusInternalServerError
		}
		return fe.Status
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errAbandoned):
		lf.metrics.fail("timeout")
		return http.StatusGatewayTimeout
	}
	lf.metrics.fail("internal")
	return http.StatusInternalServerError
}

// connectorMetrics are the series of message-source triggers and
// connections.
type connectorMetrics struct {
	messages *prometheus.CounterVec // project, flow, trigger, outcome
	inFlight *prometheus.GaugeVec   // project, flow, trigger
	lag      *prometheus.GaugeVec   // project, flow, trigger
	conn     *prometheus.GaugeVec   // policy
}

func newConnectorMetrics(reg *prometheus.Registry) *connectorMetrics {
	m := &connectorMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_trigger_messages_total",
			Help: "Messages of message-source triggers (nats, amqp, mqtt, kafka, file) by outcome: received (redeliveries count again), acked, retried, dead_lettered.",
		}, []string{"project", "flow", "trigger", "outcome"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_trigger_in_flight",
			Help: "Messages of each message-source trigger being processed (at most its maxInFlight).",
		}, []string{"project", "flow", "trigger"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_trigger_lag",
			Help: "Messages waiting behind the ones a trigger was last delivered, where the source tells: JetStream pending, Kafka high watermark past the committed offsets of the partitions fetched, AMQP queue ready messages.",
		}, []string{"project", "flow", "trigger"}),
		conn: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_connection_up",
			Help: "1 while the connection of a policy (nats…) is established; 0 while it reconnects.",
		}, []string{"policy"}),
	}
	reg.MustRegister(m.messages, m.inFlight, m.lag, m.conn)
	return m
}

func (m *connectorMetrics) up(policy string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.conn.WithLabelValues(policy).Set(v)
}

// triggerCounters are one trigger's series, resolved once.
type triggerCounters struct {
	received, acked, retried, dead prometheus.Counter
	inFlight, lag                  prometheus.Gauge
}

func (m *connectorMetrics) forTrigger(project, flow, trigger string) *triggerCounters {
	c := func(outcome string) prometheus.Counter {
		return m.messages.WithLabelValues(project, flow, trigger, outcome)
	}
	return &triggerCounters{received: c("received"), acked: c("acked"), retried: c("retried"), dead: c("dead_lettered"),
		inFlight: m.inFlight.WithLabelValues(project, flow, trigger), lag: m.lag.WithLabelValues(project, flow, trigger)}
}

func (c *triggerCounters) Received()     { c.received.Inc() }
func (c *triggerCounters) Acked()        { c.acked.Inc() }
func (c *triggerCounters) Retried()      { c.retried.Inc() }
func (c *triggerCounters) DeadLettered() { c.dead.Inc() }
func (c *triggerCounters) Lag(n int64)   { c.lag.Set(float64(n)) }
func (c *triggerCounters) InFlight(d int) {
	c.inFlight.Add(float64(d))
}
