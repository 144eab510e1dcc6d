package kubernetes

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/orchestrator"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// waitingCannotRun are container waiting reasons that no restart cures:
// the pod cannot run the runtime until someone changes something.
var waitingCannotRun = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// mapStatus is what the reconciler needs from a Deployment and its Pods.
//
// The generation serving is the Deployment's pod-template generation
// once its rollout is complete (the Deployment controller saw the
// latest spec, every replica is updated and available, no old one is
// left — what `kubectl rollout status` waits for); during a rollout it
// is the newest generation among ready pods. Restarts add up the
// containers' restart counts of the current pods (observe adds those of
// pods that are gone); a container waiting in
// CrashLoopBackOff makes the runtime Restarting, with its last
// termination as the last error.
func mapStatus(dep *appsv1.Deployment, pods []corev1.Pod) orchestrator.Observed {
	var obs orchestrator.Observed
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	wantGen, _ := strconv.ParseInt(dep.Spec.Template.Labels[LabelGen], 10, 64)
	st := dep.Status
	obs.Replicas = int(st.Replicas)
	complete := st.ObservedGeneration >= dep.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want
	obs.Progressing = !complete

	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	servingGen := int64(0)
	ready := map[int64][]string{} // generation → admin URLs of its ready pods
	var crash, cannot, other []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		gen, _ := strconv.ParseInt(p.Labels[LabelGen], 10, 64)
		if podReady(p) && p.Status.PodIP != "" {
			ready[gen] = append(ready[gen], adminURL(p.Status.PodIP))
			servingGen = max(servingGen, gen)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name != containerName {
				continue
			}
			obs.Restarts += int(cs.RestartCount)
			if w := cs.State.Waiting; w != nil {
				switch {
				case waitingCannotRun[w.Reason]:
					cannot = append(cannot, fmt.Sprintf("pod %s: %s: %s", p.Name, w.Reason, oneLine(w.Message)))
				case w.Reason == "CrashLoopBackOff":
					crash = append(crash, fmt.Sprintf("pod %s restarted %d times (CrashLoopBackOff)%s", p.Name, cs.RestartCount, lastTermination(cs)))
				}
			} else if cs.RestartCount > 0 && !cs.Ready && cs.LastTerminationState.Terminated != nil {
				crash = append(crash, fmt.Sprintf("pod %s restarted %d times%s", p.Name, cs.RestartCount, lastTermination(cs)))
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				other = append(other, fmt.Sprintf("pod %s cannot be scheduled: %s", p.Name, oneLine(c.Message)))
			}
		}
	}
	if complete {
		obs.Generation = wantGen
		obs.AvailableReplicas = int(st.AvailableReplicas)
	} else {
		obs.Generation = servingGen
		obs.AvailableReplicas = min(int(st.AvailableReplicas), len(ready[servingGen]))
		if len(pods) == 0 {
			// Status written without pods to show (a cluster whose pods
			// this control plane may not list): the Deployment's word.
			obs.AvailableReplicas = int(st.AvailableReplicas)
		}
	}
	if want == 0 {
		obs.Progressing = st.Replicas > 0
	}
	if complete {
		obs.AdminURLs = ready[wantGen]
	} else {
		obs.AdminURLs = ready[servingGen]
	}
	for _, c := range st.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			// The ReplicaSet could not make pods: quota, admission, pod
			// security; the cluster's words say which.
			cannot = append(cannot, fmt.Sprintf("the cluster cannot create pods (%s): %s", c.Reason, oneLine(c.Message)))
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
			other = append(other, "the rollout exceeded its deadline: "+oneLine(c.Message))
		}
	}
	switch {
	case len(cannot) > 0:
		obs.CannotRun = strings.Join(cannot, "; ")
		obs.LastError = obs.CannotRun
	case len(crash) > 0:
		obs.Restarting = true
		obs.LastError = strings.Join(crash, "; ")
	case len(other) > 0:
		obs.LastError = strings.Join(other, "; ")
	}
	return obs
}

func podReady(p corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func adminURL(ip string) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("http://[%s]:%d", ip, AdminPort)
	}
	return fmt.Sprintf("http://%s:%d", ip, AdminPort)
}

// lastTermination describes a container's last exit: code, reason and
// its termination message (the end of its log, which the runtime
// redacts like every log line).
func lastTermination(cs corev1.ContainerStatus) string {
	t := cs.LastTerminationState.Terminated
	if t == nil {
		return ""
	}
	s := fmt.Sprintf("; last exit code %d", t.ExitCode)
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	if m := oneLine(t.Message); m != "" {
		s += ": " + m
	}
	return s
}

// oneLine keeps the last line of a message that has text, at most 300
// bytes: a termination message is the tail of a log.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := strings.TrimSpace(lines[len(lines)-1])
	if len(out) > 300 {
		out = out[:300] + "…"
	}
	return out
}
