package federation

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/sluice-dev/sluice/internal/federation/exchange"
)

// handle answers one command from the controller. GOOD_BYE is handled by
// the read loop, since it ends the connection.
func (s *session) handle(c exchange.Command, frameType string) {
	var (
		payload any
		err     error
	)
	switch c.Type {
	case exchange.TypeHealthCheck:
		payload = s.healthCheck()
	case exchange.TypePrimary:
		payload, err = s.primary(c)
	case exchange.TypeDiscover:
		payload, err = s.discover()
	case exchange.TypeStartIngest:
		s.startIngest(c)
		return
	case exchange.TypeSubscribe:
		payload, err = s.subscribe(c)
	case exchange.TypeUnsubscribe:
		payload, err = s.unsubscribe(c)
	case exchange.TypeHello, exchange.TypeIngest:
		err = fmt.Errorf("%s is sent by the agent, not to it", c.Type)
	default: // UNKNOWN
		s.agent.cfg.Log.Warn("federation: unknown command from the controller", "type", clip(frameType))
		s.reply(exchange.Failed(c.ID, exchange.TypeUnknown, fmt.Sprintf("unknown command type %q", clip(frameType))))
		return
	}
	if err != nil {
		s.agent.cfg.Log.Warn("federation: command failed", "type", c.Type, "err", err)
		s.reply(exchange.Failed(c.ID, c.Type, err.Error()))
		return
	}
	r, err := exchange.Succeeded(c, payload)
	if err != nil {
		s.reply(exchange.Failed(c.ID, c.Type, err.Error()))
		return
	}
	s.reply(r)
}

func (s *session) healthCheck() exchange.HealthCheckReplyPayload {
	if err := s.agent.cfg.Provider.Health(s.ctx); err != nil {
		return exchange.HealthCheckReplyPayload{Healthy: false, Detail: err.Error()}
	}
	return exchange.HealthCheckReplyPayload{Healthy: true}
}

func (s *session) primary(c exchange.Command) (any, error) {
	var p exchange.PrimaryPayload
	if err := exchange.DecodePayload(c.Payload, &p); err != nil {
		return nil, err
	}
	s.agent.mu.Lock()
	s.agent.primary = p.Primary
	s.agent.mu.Unlock()
	s.agent.cfg.Log.Info("federation: primary status", "primary", p.Primary)
	return struct{}{}, nil
}

func (s *session) discover() (any, error) {
	apis, err := s.apis()
	if err != nil {
		return nil, err
	}
	return exchange.DiscoverReplyPayload{APIs: apis, IsPartialDiscovery: false}, nil
}

// apis lists the provider's APIs in Gravitee's shape, sorted by id so
// answers are stable.
func (s *session) apis() ([]exchange.API, error) {
	list, err := s.agent.cfg.Provider.APIs(s.ctx)
	if err != nil {
		return nil, fmt.Errorf("unable to list the APIs: %w", err)
	}
	out := make([]exchange.API, 0, len(list))
	for _, a := range list {
		out = append(out, wireAPI(a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// startIngest accepts an ingest job, then sends its INGEST batches, each
// after the controller acknowledged the one before. A connection lost
// mid-job abandons it: the controller starts a new job after the agent
// reconnects, and the batches are sent again from the first.
func (s *session) startIngest(c exchange.Command) {
	var p exchange.StartIngestPayload
	if err := exchange.DecodePayload(c.Payload, &p); err != nil {
		s.reply(exchange.Failed(c.ID, c.Type, err.Error()))
		return
	}
	if p.IngestJobID == "" {
		s.reply(exchange.Failed(c.ID, c.Type, "START_INGEST has no ingestJobId"))
		return
	}
	all, err := s.apis()
	if err != nil {
		s.reply(exchange.Failed(c.ID, c.Type, err.Error()))
		return
	}
	selected, err := selectAPIs(all, p.APIIDs)
	if err != nil {
		s.reply(exchange.Failed(c.ID, c.Type, err.Error()))
		return
	}
	batches, err := s.batches(p.IngestJobID, selected)
	if err != nil {
		s.reply(exchange.Failed(c.ID, c.Type, err.Error()))
		return
	}
	r, err := exchange.Succeeded(c, exchange.StartIngestReplyPayload{IngestJobID: p.IngestJobID, Total: len(selected)})
	if err != nil {
		s.reply(exchange.Failed(c.ID, c.Type, err.Error()))
		return
	}
	s.reply(r)
	for i, b := range batches {
		reply, err := s.call(exchange.TypeIngest, b)
		if err != nil {
			s.agent.cfg.Log.Warn("federation: ingest abandoned", "job", clip(p.IngestJobID), "batch", i+1, "of", len(batches), "err", err)
			return
		}
		if reply.CommandStatus != exchange.StatusSucceeded {
			s.agent.cfg.Log.Warn("federation: the controller refused an ingest batch; job abandoned", "job", clip(p.IngestJobID),
				"batch", i+1, "of", len(batches), "status", reply.CommandStatus, "details", clip(reply.ErrorDetails))
			return
		}
	}
	s.agent.cfg.Log.Info("federation: ingest done", "job", clip(p.IngestJobID), "apis", len(selected), "batches", len(batches))
}

// selectAPIs picks the APIs a job names (all when it names none); an id
// that is not there refuses the job, naming it.
func selectAPIs(all []exchange.API, ids []string) ([]exchange.API, error) {
	if len(ids) == 0 {
		return all, nil
	}
	byID := make(map[string]exchange.API, len(all))
	for _, a := range all {
		byID[a.ID] = a
	}
	var out []exchange.API
	var missing []string
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		a, ok := byID[id]
		if !ok {
			missing = append(missing, fmt.Sprintf("%q", clip(id)))
			continue
		}
		out = append(out, a)
	}
	if len(missing) > 0 {
		if len(missing) > 10 {
			missing = append(missing[:10], fmt.Sprintf("and %d more", len(missing)-10))
		}
		return nil, fmt.Errorf("unknown API ids: %s (discover again)", strings.Join(missing, ", "))
	}
	return out, nil
}

// batches splits a job's APIs into INGEST payloads of at most IngestBatch
// APIs and IngestBatchBytes each; the last one is done. A job with no
// APIs is one empty, done batch.
func (s *session) batches(job string, apis []exchange.API) ([]exchange.IngestPayload, error) {
	maxN, maxBytes := s.agent.cfg.IngestBatch, s.agent.cfg.IngestBatchBytes
	var out []exchange.IngestPayload
	cur := exchange.IngestPayload{IngestJobID: job, APIs: []exchange.API{}}
	curBytes := 0
	for _, a := range apis {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("unable to encode API %s: %w", a.ID, err)
		}
		if len(b) > maxBytes {
			return nil, fmt.Errorf("API %s is %d bytes encoded, over the batch limit of %d bytes", a.ID, len(b), maxBytes)
		}
		if len(cur.APIs) == maxN || (len(cur.APIs) > 0 && curBytes+len(b) > maxBytes) {
			out = append(out, cur)
			cur = exchange.IngestPayload{IngestJobID: job, APIs: []exchange.API{}}
			curBytes = 0
		}
		cur.APIs = append(cur.APIs, a)
		curBytes += len(b)
	}
	cur.Done = true
	return append(out, cur), nil
}

// subscription reads SUBSCRIBE's and UNSUBSCRIBE's payload.
func subscription(c exchange.Command) (Subscription, error) {
	var p exchange.SubscribePayload
	if err := exchange.DecodePayload(c.Payload, &p); err != nil {
		return Subscription{}, err
	}
	switch {
	case p.APIID == "":
		return Subscription{}, fmt.Errorf("%s has no apiId", c.Type)
	case p.Subscription.GraviteeSubscriptionID == "":
		return Subscription{}, fmt.Errorf("%s has no subscription.graviteeSubscriptionId", c.Type)
	}
	return Subscription{
		APIID:           p.APIID,
		PlanID:          p.Subscription.Metadata[exchange.MetadataPlanID],
		SubscriptionID:  p.Subscription.GraviteeSubscriptionID,
		ApplicationID:   p.Subscription.GraviteeApplicationID,
		ApplicationName: p.Subscription.GraviteeApplicationName,
		Type:            p.Subscription.Type,
	}, nil
}

func (s *session) subscribe(c exchange.Command) (any, error) {
	sub, err := subscription(c)
	if err != nil {
		return nil, err
	}
	switch sub.Type {
	case exchange.SubscriptionAPIKey, exchange.SubscriptionOAuth, "":
	default:
		return nil, fmt.Errorf("subscription type %q is not supported: Sluice's plans take API_KEY (client id) or OAUTH", clip(sub.Type))
	}
	cred, err := s.agent.cfg.Provider.Subscribe(s.ctx, sub)
	if err != nil {
		return nil, fmt.Errorf("unable to subscribe: %w", err)
	}
	s.agent.cfg.Log.Info("federation: subscribed", "api", clip(sub.APIID), "subscription", clip(sub.SubscriptionID), "app", cred.AppID, "client_id", cred.ClientID)
	// The credential is handed over once, here; it is never logged.
	res := exchange.SubscriptionResult{GraviteeSubscriptionID: sub.SubscriptionID, Metadata: map[string]string{"clientId": cred.ClientID}}
	if !cred.ClientSecret.IsZero() {
		res.Metadata["clientSecret"] = cred.ClientSecret.Reveal()
	}
	if sub.Type != exchange.SubscriptionOAuth {
		// An API_KEY plan is Sluice's client-id plan: the client id is
		// the key callers send (X-IBM-Client-Id).
		res.APIKey = cred.ClientID
	}
	return exchange.SubscribeReplyPayload{Subscription: res}, nil
}

func (s *session) unsubscribe(c exchange.Command) (any, error) {
	sub, err := subscription(c)
	if err != nil {
		return nil, err
	}
	if err := s.agent.cfg.Provider.Unsubscribe(s.ctx, sub); err != nil {
		return nil, fmt.Errorf("unable to unsubscribe: %w", err)
	}
	s.agent.cfg.Log.Info("federation: unsubscribed", "api", clip(sub.APIID), "subscription", clip(sub.SubscriptionID))
	return struct{}{}, nil
}

// wireAPI is an API in Gravitee's shape.
func wireAPI(a API) exchange.API {
	w := exchange.API{UniqueID: a.ID, ID: a.ID, Name: a.Name, Version: a.Version, Description: a.Description, Type: exchange.APITypeProxy}
	if a.URL != "" {
		w.ConnectionDetails = map[string]string{"url": a.URL}
	}
	for _, d := range a.Documents {
		var pt string
		switch d.Kind {
		case DocOpenAPI:
			pt = exchange.PageSwagger
		case DocAsyncAPI:
			pt = exchange.PageAsyncAPI
		case DocMarkdown:
			pt = exchange.PageMarkdown
		default:
			continue
		}
		w.Pages = append(w.Pages, exchange.Page{PageType: pt, Content: string(d.Content), Filename: d.Filename})
	}
	for _, p := range a.Plans {
		var st string
		switch p.Security {
		case SecurityClientID:
			st = exchange.PlanAPIKey
		case SecurityOAuth:
			st = exchange.PlanOAuth2
		default:
			// A plan without security has nothing to subscribe to.
			continue
		}
		w.Plans = append(w.Plans, exchange.Plan{ID: p.ID, Name: p.Name, Description: p.Description, PlanSecurityType: st, Characteristics: p.Characteristics})
	}
	for _, l := range a.Labels {
		f := exchange.FormatString
		if l.URL {
			f = exchange.FormatURL
		}
		w.Metadata = append(w.Metadata, exchange.Metadata{Name: l.Name, Value: l.Value, Format: f})
	}
	return w
}
