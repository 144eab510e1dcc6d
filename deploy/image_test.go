// Package deploy holds the tests of what ships for installing Sluice: the
// container image's build file (the Kubernetes manifests are tested against a
// real API server in internal/orchestrator/kubernetes, the systemd unit in
// internal/orchestrator/local).
package deploy

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// containerfile is the image's build file, relative to this package.
const containerfile = "../Containerfile"

// imageRoot is where the Containerfile's build stage lays out the image.
const imageRoot = "/rootfs"

// instruction is one line of a Containerfile, continuations joined.
type instruction struct {
	line int
	op   string // upper case: FROM, RUN, COPY, USER, …
	args string
}

func parseContainerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(containerfile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur *instruction
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur == nil && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		more := strings.HasSuffix(line, "\\")
		line = strings.TrimSuffix(line, "\\")
		if cur == nil {
			op, args, _ := strings.Cut(line, " ")
			cur = &instruction{line: n, op: strings.ToUpper(op), args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + strings.TrimSpace(line)
		}
		if !more {
			out = append(out, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The image the Containerfile describes works: its build stage's commands,
// run on this machine (Debian, as the golang image is) with /rootfs moved
// into the test's directory, lay out a tree holding a static binary and
// nothing that needs a shell; the final stage is that tree alone on scratch;
// and the image's entrypoint and command, started in that tree (chroot) as
// the image's user with an empty environment, serve — /readyz answers 200
// — and stop with exit 0 on SIGTERM, as a container runtime stops them. No
// container engine runs here, so the engine's own steps (pulling the golang
// image, COPY of the sources, the layer) are not exercised. The test
// needs root, for chroot and for the build stage's chown.
func TestImageBuildsAndServesAsItsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the image test chroots into the image's tree and chowns its data dir: CI runs it as root")
		}
		t.Skip("the image test needs root (chroot, chown)")
	}
	steps := parseContainerfile(t)
	root := filepath.Join(t.TempDir(), "rootfs")
	moduleRoot, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}

	stage := ""
	var copies [][2]string
	var user string
	var entrypoint, command []string
	for _, s := range steps {
		switch s.op {
		case "FROM":
			fields := strings.Fields(s.args)
			stage = fields[len(fields)-1]
			if len(fields) == 1 && fields[0] != "scratch" {
				t.Fatalf("%s:%d: the final stage is FROM %s: the image is meant to hold the static binary alone, FROM scratch", containerfile, s.line, fields[0])
			}
		case "RUN":
			if stage != "build" {
				t.Fatalf("%s:%d: RUN in stage %q: only the build stage can run commands (the image has no shell)", containerfile, s.line, stage)
			}
			// The build stage's working directory holds the sources
			// (COPY . .), which here is the module root.
			cmd := exec.Command("sh", "-ec", strings.ReplaceAll(s.args, imageRoot, root))
			cmd.Dir = moduleRoot
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s:%d: RUN %s: %v\n%s", containerfile, s.line, s.args, err, out)
			}
		case "COPY":
			fields := strings.Fields(s.args)
			if stage == "build" {
				continue // the sources, already where the RUN lines run
			}
			if len(fields) != 3 || fields[0] != "--from=build" {
				t.Fatalf("%s:%d: COPY %s: the final stage copies from the build stage only", containerfile, s.line, s.args)
			}
			copies = append(copies, [2]string{fields[1], fields[2]})
		case "USER":
			user = s.args
		case "ENTRYPOINT":
			entrypoint = jsonArgs(t, s)
		case "CMD":
			command = jsonArgs(t, s)
		case "WORKDIR", "ARG", "ENV", "LABEL", "EXPOSE":
			if stage != "build" && s.op != "LABEL" && s.op != "EXPOSE" {
				t.Fatalf("%s:%d: %s in the final stage is not emulated by this test: extend it", containerfile, s.line, s.op)
			}
		default:
			t.Fatalf("%s:%d: %s is not emulated by this test: extend it", containerfile, s.line, s.op)
		}
	}
	if len(copies) != 1 || copies[0] != [2]string{imageRoot + "/", "/"} {
		t.Fatalf("the final stage copies %v: this test emulates one COPY --from=build %s/ /", copies, imageRoot)
	}

	// The binary needs nothing from the image but itself: no dynamic
	// loader, no shared library (scratch has none).
	bin := filepath.Join(root, entrypoint[0])
	exe, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("entrypoint %s: %v", entrypoint[0], err)
	}
	for _, p := range exe.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s asks for a dynamic loader: build it with CGO_ENABLED=0", entrypoint[0])
		}
	}
	if libs, _ := exe.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("%s links %v", entrypoint[0], libs)
	}
	exe.Close()

	// Bundles and configurations are unpacked under os.TempDir(): /tmp must
	// be there for any user, as on every Unix (sticky, world-writable).
	if st, err := os.Stat(filepath.Join(root, "tmp")); err != nil {
		t.Fatalf("the image has no /tmp: %v", err)
	} else if want := os.ModeDir | os.ModeSticky | 0o777; st.Mode() != want {
		t.Fatalf("the image's /tmp is %v, want %v", st.Mode(), want)
	}

	uid, gid := ids(t, user)
	if uid == 0 {
		t.Fatalf("USER %q: the image runs as root", user)
	}
	// What a container runtime gives every container: /proc (sluice
	// finds its own executable there, to run runtimes from) and /dev.
	mountLikeAContainerRuntime(t, root)

	args := append(append([]string{}, entrypoint[1:]...), command...)
	addr := freeAddr(t)
	if !swapFlag(args, "--listen", addr) {
		t.Fatalf("the image's command %v gives no --listen for the test to move to a free port", args)
	}
	cmd := exec.Command(entrypoint[0], args...)
	cmd.Path = entrypoint[0] // looked up inside the chroot, not on this PATH
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
	}
	cmd.Dir = "/"
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	ready := false
	for deadline := time.Now().Add(60 * time.Second); !ready && time.Now().Before(deadline); {
		select {
		case err := <-exited:
			t.Fatalf("the image's command %v exited before it was ready: %v\n%s", args, err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			ready = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
	}
	if !ready {
		t.Fatalf("the image's command was not ready within 60 s\n%s", out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM: a container runtime would kill it\n%s", out.String())
	}
}

// mountLikeAContainerRuntime mounts what an OCI runtime gives a container
// in the image's tree — a proc file system and a tmpfs /dev holding null,
// zero, random and urandom — and unmounts them when the test ends (before
// the temporary directory is removed: cleanups run last first). /dev is
// not this machine's bound in, so that nothing of the host's is under the
// tree the test deletes.
func mountLikeAContainerRuntime(t *testing.T, root string) {
	t.Helper()
	for _, m := range []struct{ dir, fstype string }{{"proc", "proc"}, {"dev", "tmpfs"}} {
		dir := filepath.Join(root, m.dir)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("the image has its own /%s, which a container runtime would mount over: %v", m.dir, err)
		}
		if err := syscall.Mount(m.fstype, dir, m.fstype, syscall.MS_NOSUID|syscall.MS_NOEXEC, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", m.fstype, dir, err)
		}
		t.Cleanup(func() {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
	}
	for name, minor := range map[string]int{"null": 3, "zero": 5, "random": 8, "urandom": 9} {
		dev := filepath.Join(root, "dev", name)
		if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, 1<<8|minor); err != nil {
			t.Fatalf("mknod %s: %v", dev, err)
		}
		if err := os.Chmod(dev, 0o666); err != nil { // mknod's mode is masked by the umask
			t.Fatal(err)
		}
	}
}

func jsonArgs(t *testing.T, s instruction) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(s.args), &args); err != nil || len(args) == 0 {
		t.Fatalf("%s:%d: %s %s: give the exec form, a JSON array (the image has no shell for the other form)", containerfile, s.line, s.op, s.args)
	}
	return args
}

// ids reads USER uid:gid; names would need the image's /etc/passwd, which
// it has not.
func ids(t *testing.T, user string) (uint32, uint32) {
	t.Helper()
	u, g, ok := strings.Cut(user, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("USER %q: give numeric uid:gid (the image has no /etc/passwd)", user)
	}
	return uint32(uid), uint32(gid)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// swapFlag replaces the value after flag in args and says whether it was
// there.
func swapFlag(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			args[i+1] = value
			return true
		}
	}
	return false
}
