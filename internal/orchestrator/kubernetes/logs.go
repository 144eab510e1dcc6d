package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"sort"
	"sync"

	"github.com/sluice-dev/sluice/internal/orchestrator"
	corev1 "k8s.io/api/core/v1"
)

// Logs reads the runtime container's log of each of runtime k's pods
// through the cluster's pod log API (which asks the kubelet of the pod's
// node), each line prefixed with its pod's name. With follow, the pods'
// streams are merged line by line until ctx ends. A pod whose log cannot
// be read (not scheduled yet, node gone) contributes one line saying so,
// with what the cluster answered.
func (b *Backend) Logs(ctx context.Context, k orchestrator.Key, tail int, follow bool) (io.ReadCloser, error) {
	c, err := b.cluster()
	if err != nil {
		return nil, err
	}
	lctx, cancel := ctxTimeout(ctx)
	items, err := list[corev1.Pod](lctx, c, resPods, b.opts.Namespace, b.runtimeSelector(k))
	cancel()
	if err != nil {
		return nil, classify("list", "the Pods of "+objectName(k), err)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	if !follow {
		var buf bytes.Buffer
		for _, p := range items {
			if p.Spec.NodeName == "" {
				// The API server answers an empty log for such a pod.
				buf.WriteString("[" + p.Name + "] no log yet: the pod is not scheduled to a node\n")
				continue
			}
			rctx, cancel := ctxTimeout(ctx)
			rc, err := c.podLog(rctx, b.opts.Namespace, p.Name, tail, follow)
			if err != nil {
				buf.WriteString("[" + p.Name + "] log unavailable: " + classify("read", "the log of pod "+p.Name, err).Message + "\n")
				cancel()
				continue
			}
			prefixLines(&buf, rc, p.Name)
			rc.Close()
			cancel()
		}
		return io.NopCloser(&buf), nil
	}
	pr, pw := io.Pipe()
	fctx, stop := context.WithCancel(ctx)
	var mu sync.Mutex // one line at a time into the pipe
	var wg sync.WaitGroup
	for _, p := range items {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			rc, err := c.podLog(fctx, b.opts.Namespace, name, tail, follow)
			if err != nil {
				mu.Lock()
				io.WriteString(pw, "["+name+"] log unavailable: "+classify("read", "the log of pod "+name, err).Message+"\n")
				mu.Unlock()
				return
			}
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				mu.Lock()
				_, werr := io.WriteString(pw, "["+name+"] "+sc.Text()+"\n")
				mu.Unlock()
				if werr != nil {
					return
				}
			}
		}(p.Name)
	}
	go func() {
		wg.Wait()
		<-fctx.Done() // follow holds the stream open until the caller ends it
		pw.Close()
	}()
	return &stopCloser{ReadCloser: pr, stop: stop}, nil
}

type stopCloser struct {
	io.ReadCloser
	stop context.CancelFunc
}

func (s *stopCloser) Close() error {
	s.stop()
	return s.ReadCloser.Close()
}

func prefixLines(dst *bytes.Buffer, src io.Reader, pod string) {
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		dst.WriteString("[" + pod + "] ")
		dst.Write(sc.Bytes())
		dst.WriteByte('\n')
	}
}
