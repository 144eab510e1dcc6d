package orchestrator

import (
	"time"

	"github.com/sluice-dev/sluice/internal/store"
)

// Stamp and Quiet let the external tests ask what the lead loop asks
// before a periodic pass.
func (r *Reconciler) Stamp() (store.WriteStamp, bool) { return r.writeStamp() }

func (r *Reconciler) Quiet(stamp store.WriteStamp, last time.Time) bool { return r.quiet(stamp, last) }
