package orchestrator

import (
	"strings"
	"testing"
)

// A crash being restarted is Restarting; Failed is kept for a runtime that
// cannot run. The observations are the local backend's (its tests check
// that it reports Restarting and CannotRun for real processes).
func TestReadinessPhases(t *testing.T) {
	crashed := "replica 0 (pid 41) was killed by signal 9"
	tests := []struct {
		name       string
		obs        Observed
		replicas   int
		upToDate   bool
		missing    []string
		fetchErr   string
		phase      string
		reason     string
		msgHolding string
	}{
		{"ready", Observed{Generation: 1, Replicas: 2, AvailableReplicas: 2}, 2, true, nil, "", PhaseReady, "Available", "2 of 2"},
		{"only replica crashed, restart backing off", Observed{Generation: 1, Replicas: 0, Restarting: true, LastError: crashed, Restarts: 3}, 1, false, nil, "",
			PhaseRestarting, "Restarting", crashed},
		{"one of two crashed, the other serves", Observed{Generation: 1, Replicas: 1, AvailableReplicas: 1, Restarting: true, LastError: crashed}, 2, true, nil, "",
			PhaseRestarting, "Restarting", "1 of 2 replicas ready"},
		{"restarted and ready again (the last error stays)", Observed{Generation: 1, Replicas: 1, AvailableReplicas: 1, LastError: crashed, Restarts: 1}, 1, true, nil, "",
			PhaseReady, "Available", "1 of 1"},
		{"cannot start processes", Observed{CannotRun: "its replicas cannot be started: port taken", LastError: "port taken"}, 1, false, nil, "",
			PhaseFailed, "CannotRun", "cannot be started"},
		{"exits before ready, again and again", Observed{CannotRun: "it exits before it is ready, 3 times in a row: bad setting", LastError: "bad setting"}, 1, false, nil, "",
			PhaseFailed, "CannotRun", "3 times in a row"},
		{"BAR fetch failed", Observed{}, 1, false, nil, "GET https://x/b.bar: 401", PhaseFailed, "BARFetchFailed", "401"},
		{"missing configuration, crash recorded", Observed{Restarting: true, LastError: crashed}, 1, false, []string{"configuration db"}, "",
			PhasePending, "Missing", "configuration db"},
		{"starting", Observed{Replicas: 1}, 1, false, nil, "", PhasePending, "Starting", "0 of 1"},
		{"stopped", Observed{}, 0, true, nil, "", PhaseStopped, "Stopped", "spec.replicas is 0"},
	}
	for _, tt := range tests {
		phase, status, reason, msg := readiness(tt.obs, tt.replicas, tt.upToDate, tt.missing, tt.fetchErr)
		if phase != tt.phase || reason != tt.reason || !strings.Contains(msg, tt.msgHolding) || (status == "True") != (tt.phase == PhaseReady) {
			t.Errorf("%s: %s %s %s %q; want %s, reason %s, message with %q", tt.name, phase, status, reason, msg, tt.phase, tt.reason, tt.msgHolding)
		}
	}
}
