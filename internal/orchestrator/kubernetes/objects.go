package kubernetes

import (
	"fmt"
	"net/url"
	"sort"

	"github.com/sluice-dev/sluice/internal/orchestrator"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Keys of the runtime Secret.
const (
	keyBundleToken = "bundle-token"
	keyAdminToken  = "admin-token"
	keyBundleCA    = "bundle-ca.pem"
	secretMount    = "/etc/sluice/runtime"
)

// secretObject is runtime d's Secret: its credentials, nothing of its
// configurations (the pods fetch those from the control plane).
func (b *Backend) secretObject(d orchestrator.Deployment, admin string, owner *metav1.OwnerReference) *corev1.Secret {
	s := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: b.meta(d.Key, d.UID, owner),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{keyBundleToken: []byte(d.BundleToken.Reveal()), keyAdminToken: []byte(admin)},
	}
	if len(d.BundleCA) > 0 {
		s.Data[keyBundleCA] = d.BundleCA
	}
	return s
}

func (b *Backend) meta(k orchestrator.Key, uid string, owner *metav1.OwnerReference) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: objectName(k), Namespace: b.opts.Namespace, Labels: b.baseLabels(k), Annotations: annotations(k, uid)}
	if owner != nil {
		m.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return m
}

// serviceObject is the Service in front of runtime k's pods: the flows'
// port only (the admin port is reached per pod, by the control plane).
func (b *Backend) serviceObject(k orchestrator.Key, uid string, owner *metav1.OwnerReference) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: b.meta(k, uid, owner),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{LabelInstall: b.opts.Install, LabelRuntimeID: objectName(k)},
			Ports:    []corev1.ServicePort{{Name: "http", Port: FlowPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// ingressHost is the host name of runtime k's Ingress.
func (b *Backend) ingressHost(k orchestrator.Key) string {
	return objectName(k) + "." + b.opts.IngressDomain
}

// ingressObject routes ingressHost(k) to runtime k's Service.
func (b *Backend) ingressObject(k orchestrator.Key, uid string, owner *metav1.OwnerReference) *networkingv1.Ingress {
	host := b.ingressHost(k)
	ing := &networkingv1.Ingress{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"},
		ObjectMeta: b.meta(k, uid, owner),
		Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: objectName(k), Port: networkingv1.ServiceBackendPort{Name: "http"}}}}},
			}}}},
		},
	}
	if b.opts.IngressClass != "" {
		ing.Spec.IngressClassName = ptr.To(b.opts.IngressClass)
	}
	if b.opts.IngressTLSSecret != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: b.opts.IngressTLSSecret}}
	}
	return ing
}

// ingressURL is where the cluster's Ingress ing serves its first host,
// as read back from it: https when one of its TLS entries names the host.
func ingressURL(ing *networkingv1.Ingress) string {
	if len(ing.Spec.Rules) == 0 || ing.Spec.Rules[0].Host == "" {
		return ""
	}
	host := ing.Spec.Rules[0].Host
	for _, t := range ing.Spec.TLS {
		for _, h := range t.Hosts {
			if h == host {
				return "https://" + host
			}
		}
	}
	return "http://" + host
}

// publicURL is where clients reach runtime k's flows: its Ingress's host
// when there is one, else its Service inside the cluster.
func (b *Backend) publicURL(k orchestrator.Key) string {
	if b.opts.IngressDomain != "" {
		scheme := "http://"
		if b.opts.IngressTLSSecret != "" {
			scheme = "https://"
		}
		return scheme + b.ingressHost(k)
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", objectName(k), b.opts.Namespace, FlowPort)
}

// serviceURL is where the flows of runtime k are served inside the cluster.
func (b *Backend) serviceURL(svc *corev1.Service) string {
	port := int32(FlowPort)
	for _, p := range svc.Spec.Ports {
		if p.Name == "http" {
			port = p.Port
		}
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", svc.Name, svc.Namespace, port)
}

// deploymentObject is runtime d's Deployment. The generation is a label
// of the pod template, so every new generation of the spec (with its own
// bundle URL and token) rolls the pods over; maxUnavailable 0 keeps the
// previous generation serving until the new pods are ready.
func (b *Backend) deploymentObject(d orchestrator.Deployment) (*appsv1.Deployment, error) {
	k := d.Key
	podLabels := b.baseLabels(k)
	podLabels[LabelGen] = itoa(d.Generation)
	labels := b.baseLabels(k)
	labels[LabelGen] = itoa(d.Generation)
	publicURL := b.publicURL(k)
	args := []string{"runtime",
		"--bundle-url", d.BundleURL,
		"--bundle-token-file", secretMount + "/" + keyBundleToken,
		"--bundle-dir", "/tmp/bundle",
		"--listen", fmt.Sprintf(":%d", FlowPort),
		"--admin-listen", fmt.Sprintf(":%d", AdminPort),
		"--admin-token-file", secretMount + "/" + keyAdminToken,
		"--public-url", publicURL,
	}
	if len(d.BundleCA) > 0 {
		args = append(args, "--bundle-ca-file", secretMount+"/"+keyBundleCA)
	}
	res, err := resources(d.Resources)
	if err != nil {
		return nil, err
	}
	c := corev1.Container{
		Name:  containerName,
		Image: b.opts.Image,
		Args:  args,
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: FlowPort, Protocol: corev1.ProtocolTCP},
			{Name: "admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP},
		},
		Resources: res,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("admin")}},
			PeriodSeconds: 2, FailureThreshold: 3, TimeoutSeconds: 2,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("admin")}},
			PeriodSeconds: 10, FailureThreshold: 3, TimeoutSeconds: 2,
			InitialDelaySeconds: 5,
		},
		// The last lines of a crashed runtime's log become its
		// termination message: what status shows as the last error.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "credentials", MountPath: secretMount, ReadOnly: true},
			{Name: "tmp", MountPath: "/tmp"},
		},
	}
	if b.opts.ImagePullPolicy != "" {
		c.ImagePullPolicy = corev1.PullPolicy(b.opts.ImagePullPolicy)
	}
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: b.meta(k, d.UID, nil),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(d.Replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelInstall: b.opts.Install, LabelRuntimeID: objectName(k)}},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			RevisionHistoryLimit:    ptr.To(int32(2)),
			ProgressDeadlineSeconds: ptr.To(int32(300)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations(k, d.UID)},
				Spec: corev1.PodSpec{
					Containers:                   []corev1.Container{c},
					AutomountServiceAccountToken: ptr.To(false), // runtimes have no business with the cluster's API
					EnableServiceLinks:           ptr.To(false),
					// The runtime drains for up to 30 s after SIGTERM.
					TerminationGracePeriodSeconds: ptr.To(int64(40)),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To(b.opts.RunAsUser),
						RunAsGroup:     ptr.To(b.opts.RunAsUser),
						FSGroup:        ptr.To(b.opts.RunAsUser),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Volumes: []corev1.Volume{
						{Name: "credentials", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
							SecretName: objectName(k), DefaultMode: ptr.To(int32(0o440))}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("512Mi"))}}},
					},
				},
			},
		},
	}
	dep.Labels = labels
	return dep, nil
}

// resources converts the runtime spec's container resources (checked
// when the spec was written, so a parse failure here is a bug's error).
func resources(r *orchestrator.Resources) (corev1.ResourceRequirements, error) {
	var out corev1.ResourceRequirements
	if r == nil {
		return out, nil
	}
	conv := func(m map[string]string) (corev1.ResourceList, error) {
		if len(m) == 0 {
			return nil, nil
		}
		l := corev1.ResourceList{}
		for n, v := range m {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return nil, fmt.Errorf("kubernetes: resource %s: %v", n, err)
			}
			l[corev1.ResourceName(n)] = q
		}
		return l, nil
	}
	var err error
	if out.Limits, err = conv(r.Limits); err != nil {
		return out, err
	}
	out.Requests, err = conv(r.Requests)
	return out, err
}

// policyObject is the NetworkPolicy of instance id's runtimes:
//
//   - in: their flow port from their own instance's runtimes and from any
//     pod that is not a Sluice runtime (clients, ingress controllers);
//     their admin port from the control plane only;
//   - out: their own instance's runtimes (flows calling flows), the
//     control plane on BundlePort only, DNS, any pod that is neither a
//     runtime nor the control plane, and addresses outside the cluster
//     (0.0.0.0/0 and ::/0 less EgressExcept).
//
// Other instances' runtimes match none of these peers.
func (b *Backend) policyObject(instance string) *networkingv1.NetworkPolicy {
	own := map[string]string{LabelInstall: b.opts.Install, LabelRole: RoleRuntime, LabelInstance: labelFor(instance)}
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(p int, proto *corev1.Protocol) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Protocol: proto, Port: ptr.To(intstr.FromInt32(int32(p)))}
	}
	allNS := &metav1.LabelSelector{}
	notSluice := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelRole, Operator: metav1.LabelSelectorOpDoesNotExist}}}
	notRuntime := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelRole, Operator: metav1.LabelSelectorOpNotIn, Values: []string{RoleRuntime}}}}
	control := networkingv1.NetworkPolicyPeer{
		PodSelector:       &metav1.LabelSelector{MatchLabels: b.opts.ControlPlaneSelector},
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": b.opts.ControlPlaneNamespace}},
	}
	var world []networkingv1.NetworkPolicyPeer
	for _, cidr := range []string{"0.0.0.0/0", "::/0"} {
		var except []string
		for _, e := range b.opts.EgressExcept {
			if (cidr == "::/0") == isIPv6CIDR(e) {
				except = append(except, e)
			}
		}
		sort.Strings(except)
		world = append(world, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}})
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: policyName(instance), Namespace: b.opts.Namespace,
			Labels:      map[string]string{LabelManagedBy: "sluice", LabelInstall: b.opts.Install, LabelInstance: labelFor(instance)},
			Annotations: map[string]string{AnnInstance: instance}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: own},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: own}}, {NamespaceSelector: allNS, PodSelector: notRuntime}},
					Ports: []networkingv1.NetworkPolicyPort{port(FlowPort, &tcp)}},
				{From: []networkingv1.NetworkPolicyPeer{control}, Ports: []networkingv1.NetworkPolicyPort{port(FlowPort, &tcp), port(AdminPort, &tcp)}},
			},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: own}}}, Ports: []networkingv1.NetworkPolicyPort{port(FlowPort, &tcp)}},
				{To: []networkingv1.NetworkPolicyPeer{control}, Ports: []networkingv1.NetworkPolicyPort{port(b.opts.BundlePort, &tcp)}},
				{Ports: []networkingv1.NetworkPolicyPort{port(53, &udp), port(53, &tcp)}},
				{To: append([]networkingv1.NetworkPolicyPeer{{NamespaceSelector: allNS, PodSelector: notSluice}}, world...)},
			},
		},
	}
}

func isIPv6CIDR(s string) bool {
	for _, c := range s {
		if c == ':' {
			return true
		}
	}
	return false
}

// BundlePortOf is the port of a bundle base URL (the default port of its
// scheme when it names none).
func BundlePortOf(base string) int {
	u, err := url.Parse(base)
	if err != nil {
		return 0
	}
	if p := u.Port(); p != "" {
		var n int
		fmt.Sscanf(p, "%d", &n)
		return n
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}
