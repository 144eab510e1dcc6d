package orchestrator

import (
	"log/slog"
	"time"
)

// passLogEvery is how often a pass failing the same way is logged again.
const passLogEvery = 5 * time.Minute

// passLog logs failed reconcile passes without a line every pass: a
// cluster that refuses the backend's List (RBAC, quota) fails every pass,
// every 2 s, the same way until someone acts. A failure is logged when
// its message differs from the last one logged, or passLogEvery after
// it; the first pass that succeeds after failures says so once.
type passLog struct {
	log     *slog.Logger
	last    string    // message of the failure last logged
	at      time.Time // when it was logged
	failing int       // passes failed since the last success
}

func (p *passLog) pass(err error, now time.Time) {
	if err == nil {
		if p.failing > 0 {
			p.log.Info("reconcile passes succeed again", "failedPasses", p.failing)
		}
		p.failing, p.last = 0, ""
		return
	}
	p.failing++
	msg := err.Error()
	if msg == p.last && now.Sub(p.at) < passLogEvery {
		return
	}
	p.last, p.at = msg, now
	p.log.Warn("reconcile pass failed", "err", err, "failedPasses", p.failing)
}
