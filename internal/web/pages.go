package web

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/store"
)

// --- integration runtimes -------------------------------------------------

// choices are the BAR files and configurations a runtime form offers.
type choices struct {
	BARs    []string
	Configs []string
}

func (d *Dashboard) choices(r *http.Request) (choices, error) {
	ctx, p := r.Context(), principal(r)
	var c choices
	bars, err := iam.All(func(req iam.ListRequest) (iam.ListPage[barstore.File], error) { return d.BARs.List(ctx, p, req) })
	if err != nil {
		return c, err
	}
	for _, b := range bars {
		c.BARs = append(c.BARs, b.Name)
	}
	cfgs, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.Configuration], error) {
		return d.Configs.List(ctx, p, req)
	})
	if err != nil {
		return c, err
	}
	for _, cfg := range cfgs {
		c.Configs = append(c.Configs, cfg.Name)
	}
	return c, nil
}

type runtimesPage struct {
	List []orchestrator.Runtime
	choices
}

func (d *Dashboard) showRuntimes(w http.ResponseWriter, r *http.Request, status int, v view) {
	rs, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[orchestrator.Runtime], error) {
		return d.Runtimes.List(r.Context(), principal(r), req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	ch, err := d.choices(r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if v.Form == nil {
		v.Form = map[string]string{"replicas": "1"}
	}
	v.Title, v.Nav, v.Page, v.Pager = "Integration runtimes", "runtimes", runtimesPage{List: rs, choices: ch}, pg
	d.render(w, r, status, "runtimes", v)
}

func (d *Dashboard) runtimesPage(w http.ResponseWriter, r *http.Request) {
	d.showRuntimes(w, r, http.StatusOK, view{})
}

// barURL is the url a runtime's spec names an instance's BAR file by, the
// same the API hands out on upload.
func (d *Dashboard) barURL(name string) string {
	return strings.TrimRight(d.PublicURL, "/") + "/api/v1/bar-files/" + name + "/content"
}

// specForm reads the BAR files and configurations ticked in a runtime
// form, and remembers them to show the form again as it was.
func specForm(r *http.Request) (bars, cfgs []string, checked map[string]bool) {
	checked = map[string]bool{}
	for _, b := range r.PostForm["bar"] {
		bars = append(bars, b)
		checked["bar:"+b] = true
	}
	for _, c := range r.PostForm["configuration"] {
		cfgs = append(cfgs, c)
		checked["cfg:"+c] = true
	}
	return bars, cfgs, checked
}

func (d *Dashboard) createRuntime(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.FormValue("name"))
	typed := strings.TrimSpace(r.FormValue("replicas"))
	form := map[string]string{"name": name, "replicas": typed}
	bars, cfgs, checked := specForm(r)
	again := func(status int, msg string) {
		d.showRuntimes(w, r, status, view{Form: form, Checked: checked, FormErr: msg})
	}
	n, err := strconv.Atoi(typed)
	if err != nil || n < 0 || n > orchestrator.MaxReplicas {
		again(http.StatusBadRequest, fmt.Sprintf("replicas must be a whole number from 0 (stopped) to %d", orchestrator.MaxReplicas))
		return
	}
	if len(bars) == 0 {
		again(http.StatusBadRequest, "tick at least one BAR file: a runtime runs the flows of its BAR files")
		return
	}
	spec := orchestrator.Spec{Configurations: cfgs, Replicas: &n}
	for _, b := range bars {
		spec.BarURL = append(spec.BarURL, d.barURL(b))
	}
	if _, _, err := d.Runtimes.Put(r.Context(), principal(r), name, spec, true); err != nil {
		status, msg := d.message(r, err)
		again(status, msg)
		return
	}
	d.redirect(w, r, "/runtimes/"+name, "integration runtime "+name+" created: it turns Ready when its replicas serve")
}

type runtimePage struct {
	R        orchestrator.Runtime
	Logs     string
	LogsNote string   // why there are no logs, when there are none
	External []string // barURLs outside this control plane, kept as they are
	Traces   []orchestrator.TraceView
	Tracing  bool // a runtime backend runs, so traces can be taken
	Charts   chartsView
	choices
}

// logTail is how many log lines the runtime page shows, and logBytes the
// most it reads of them, so one long line cannot swell the page.
const (
	logTail  = 100
	logBytes = 256 << 10
)

func (d *Dashboard) showRuntime(w http.ResponseWriter, r *http.Request, status int, v view) {
	ctx, p, name := r.Context(), principal(r), r.PathValue("name")
	rt, err := d.Runtimes.Get(ctx, p, name)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg := runtimePage{R: rt, Charts: d.chartsOf(p.InstanceID, name)}
	if pg.choices, err = d.choices(r); err != nil {
		d.fail(w, r, err)
		return
	}
	if v.Checked == nil {
		v.Checked = map[string]bool{}
		for _, u := range rt.Spec.BarURL {
			if ref, err := orchestrator.ParseBARURL(u); err == nil && ref.Name != "" {
				v.Checked["bar:"+ref.Name] = true
			}
		}
		for _, c := range rt.Spec.Configurations {
			v.Checked["cfg:"+c] = true
		}
	}
	for _, u := range rt.Spec.BarURL {
		if ref, err := orchestrator.ParseBARURL(u); err == nil && ref.URL != "" {
			pg.External = append(pg.External, ref.URL)
		}
	}
	if d.Traces != nil {
		pg.Tracing = true
		if pg.Traces, err = iam.All(func(req iam.ListRequest) (iam.ListPage[orchestrator.TraceView], error) {
			return d.Traces.List(ctx, p, name, req)
		}); err != nil {
			d.fail(w, r, err)
			return
		}
	}
	if d.Reconciler == nil {
		pg.LogsNote = "this control plane runs no runtime backend, so there are no logs"
	} else if rc, err := d.Reconciler.Backend.Logs(ctx, orchestrator.Key{InstanceID: p.InstanceID, Name: name}, logTail, false); err != nil {
		_, pg.LogsNote = d.message(r, err)
	} else {
		b, _ := io.ReadAll(io.LimitReader(rc, logBytes))
		rc.Close()
		pg.Logs = string(b)
		if pg.Logs == "" {
			pg.LogsNote = "no log lines yet"
		}
	}
	v.Title, v.Nav, v.Page = "Runtime "+name, "runtimes", pg
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	if _, typed := v.Form["replicas"]; !typed {
		v.Form["replicas"] = strconv.Itoa(replicasOf(rt.Spec))
	}
	d.render(w, r, status, "runtime", v)
}

func replicasOf(s orchestrator.Spec) int {
	if s.Replicas == nil {
		return 1
	}
	return *s.Replicas
}

func (d *Dashboard) runtimePage(w http.ResponseWriter, r *http.Request) {
	d.showRuntime(w, r, http.StatusOK, view{})
}

func (d *Dashboard) setReplicas(w http.ResponseWriter, r *http.Request) {
	ctx, p, name := r.Context(), principal(r), r.PathValue("name")
	typed := strings.TrimSpace(r.FormValue("replicas"))
	n, err := strconv.Atoi(typed)
	if err != nil || n < 0 || n > orchestrator.MaxReplicas {
		d.showRuntime(w, r, http.StatusBadRequest, view{Form: map[string]string{"replicas": typed},
			FormErr: fmt.Sprintf("replicas must be a whole number from 0 (stopped) to %d", orchestrator.MaxReplicas)})
		return
	}
	rt, err := d.Runtimes.Get(ctx, p, name)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	spec := rt.Spec
	spec.Replicas = &n
	if _, _, err := d.Runtimes.Put(ctx, p, name, spec, false); err != nil {
		status, msg := d.message(r, err)
		d.showRuntime(w, r, status, view{Form: map[string]string{"replicas": typed}, FormErr: msg})
		return
	}
	d.redirect(w, r, "/runtimes/"+name, fmt.Sprintf("%s now has %d replicas wanted", name, n))
}

// setSpec replaces a runtime's BAR files and configurations; external
// BAR urls and every other field of the spec are kept.
func (d *Dashboard) setSpec(w http.ResponseWriter, r *http.Request) {
	ctx, p, name := r.Context(), principal(r), r.PathValue("name")
	bars, cfgs, checked := specForm(r)
	rt, err := d.Runtimes.Get(ctx, p, name)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	spec := rt.Spec
	spec.BarURL = nil
	for _, u := range rt.Spec.BarURL {
		if ref, err := orchestrator.ParseBARURL(u); err == nil && ref.URL != "" {
			spec.BarURL = append(spec.BarURL, u)
		}
	}
	for _, b := range bars {
		spec.BarURL = append(spec.BarURL, d.barURL(b))
	}
	spec.Configurations = cfgs
	if _, _, err := d.Runtimes.Put(ctx, p, name, spec, false); err != nil {
		status, msg := d.message(r, err)
		d.showRuntime(w, r, status, view{Checked: checked, SpecErr: msg})
		return
	}
	d.redirect(w, r, "/runtimes/"+name, name+" rolls over to its new BAR files and configurations")
}

func (d *Dashboard) deleteRuntime(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := d.Runtimes.Delete(r.Context(), principal(r), name); err != nil {
		status, msg := d.message(r, err)
		d.showRuntime(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/runtimes", "integration runtime "+name+" deleted")
}

// --- BAR files ------------------------------------------------------------

func (d *Dashboard) showBARFiles(w http.ResponseWriter, r *http.Request, status int, v view) {
	fs, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[barstore.File], error) {
		return d.BARs.List(r.Context(), principal(r), req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	v.Title, v.Nav, v.Page, v.Pager = "BAR files", "bar-files", fs, pg
	d.render(w, r, status, "barfiles", v)
}

func (d *Dashboard) barFilesPage(w http.ResponseWriter, r *http.Request) {
	d.showBARFiles(w, r, http.StatusOK, view{})
}

// uploadedFile returns the form's file field, or nil when none was chosen.
func uploadedFile(r *http.Request, field string) (multipart.File, *multipart.FileHeader) {
	if r.MultipartForm == nil {
		return nil, nil
	}
	fhs := r.MultipartForm.File[field]
	if len(fhs) == 0 {
		return nil, nil
	}
	f, err := fhs[0].Open()
	if err != nil {
		return nil, nil
	}
	return f, fhs[0]
}

func (d *Dashboard) uploadBARFile(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.FormValue("name"))
	form := map[string]string{"name": name}
	f, fh := uploadedFile(r, "file")
	if f == nil {
		d.showBARFiles(w, r, http.StatusBadRequest, view{Form: form, FormErr: "choose a BAR file to upload"})
		return
	}
	defer f.Close()
	if name == "" {
		// The file's own name, as the CLI does: orders.bar → orders.
		name = strings.TrimSuffix(path.Base(strings.ReplaceAll(fh.Filename, `\`, "/")), ".bar")
	}
	bf, created, err := d.BARs.Put(r.Context(), principal(r), name, f)
	if err != nil {
		status, msg := d.message(r, err)
		d.showBARFiles(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	verb := "replaced"
	if created {
		verb = "uploaded"
	}
	d.redirect(w, r, "/bar-files", fmt.Sprintf("BAR file %s %s: %d flows, %d endpoints", bf.Name, verb, len(bf.Info.Flows), len(bf.Info.Endpoints)))
}

func (d *Dashboard) downloadBARFile(w http.ResponseWriter, r *http.Request) {
	f, rc, err := d.BARs.Open(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, f.Name+".bar"))
	_, _ = io.Copy(w, rc)
}

func (d *Dashboard) deleteBARFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := d.BARs.Delete(r.Context(), principal(r), name, false); err != nil {
		status, msg := d.message(r, err)
		d.showBARFiles(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/bar-files", "BAR file "+name+" deleted")
}

// --- configurations -------------------------------------------------------

type configurationsPage struct {
	List  []store.Configuration
	Types []configuration.Type
}

func (d *Dashboard) showConfigurations(w http.ResponseWriter, r *http.Request, status int, v view) {
	cs, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[store.Configuration], error) {
		return d.Configs.List(r.Context(), principal(r), req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	v.Title, v.Nav, v.Page, v.Pager = "Configurations", "configurations", configurationsPage{List: cs, Types: configuration.Types()}, pg
	d.render(w, r, status, "configurations", v)
}

func (d *Dashboard) configurationsPage(w http.ResponseWriter, r *http.Request) {
	d.showConfigurations(w, r, http.StatusOK, view{})
}

func (d *Dashboard) createConfiguration(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"name": strings.TrimSpace(r.FormValue("name")), "type": r.FormValue("type"),
		"description": r.FormValue("description")}
	f, _ := uploadedFile(r, "file")
	if f == nil {
		d.showConfigurations(w, r, http.StatusBadRequest, view{Form: form, FormErr: "choose the file that holds the configuration's data"})
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, configuration.MaxDataSize+1))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	// createOnly: a form that names an existing configuration must not
	// silently replace its data.
	_, _, err = d.Configs.Put(r.Context(), principal(r), configuration.Input{Name: form["name"], Type: form["type"],
		Description: form["description"], Data: data}, true)
	clear(data)
	if err != nil {
		status, msg := d.message(r, err)
		d.showConfigurations(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	d.redirect(w, r, "/configurations", "configuration "+form["name"]+" created")
}

func (d *Dashboard) deleteConfiguration(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := d.Configs.Delete(r.Context(), principal(r), name, false); err != nil {
		status, msg := d.message(r, err)
		d.showConfigurations(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/configurations", "configuration "+name+" deleted")
}

// --- settings: public API credentials -------------------------------------

func (d *Dashboard) showCredentials(w http.ResponseWriter, r *http.Request, status int, v view) {
	cs, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[store.ClientCredential], error) {
		return d.IAM.ListClientCredentials(r.Context(), principal(r), req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	v.Title, v.Nav, v.Page, v.Pager = "Public API credentials", "credentials", cs, pg
	d.render(w, r, status, "credentials", v)
}

func (d *Dashboard) credentialsPage(w http.ResponseWriter, r *http.Request) {
	d.showCredentials(w, r, http.StatusOK, view{})
}

// shownOnce is a page that shows a new secret the only time it exists in
// clear; the response is never cached (see headers).
type shownOnce struct {
	What       string
	Back       string
	Fields     []field
	Extra      []field // more values for the JSON download, not shown
	DownloadAs string  // file name of the JSON download; "" for none
}

// field is one value on the page; JSON names it in the downloaded file.
type field struct{ Label, Value, ID, JSON string }

func (d *Dashboard) createCredential(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"name": strings.TrimSpace(r.FormValue("name")), "description": r.FormValue("description")}
	c, sec, err := d.IAM.PutClientCredential(r.Context(), principal(r), iam.CredentialInput{Name: form["name"], Description: form["description"]}, true)
	if err != nil {
		status, msg := d.message(r, err)
		d.showCredentials(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	d.render(w, r, http.StatusOK, "shown", view{Title: "Public API credential created", Nav: "credentials", Page: shownOnce{
		What: "public API credential " + c.Name, Back: "/settings/credentials",
		Fields: []field{{"Client id", c.ClientID, "client-id", ""}, {"Client secret", sec.Reveal(), "client-secret", ""}},
	}})
}

func (d *Dashboard) deleteCredential(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := d.IAM.DeleteClientCredential(r.Context(), principal(r), name); err != nil {
		status, msg := d.message(r, err)
		d.showCredentials(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/settings/credentials", "credential "+name+" deleted")
}

// --- settings: API keys ---------------------------------------------------

type apiKeysPage struct {
	Keys   []store.APIKey
	Owners []string // "kind:name" an admin may make keys for; empty for others
}

func (d *Dashboard) showAPIKeys(w http.ResponseWriter, r *http.Request, status int, v view) {
	ctx, p := r.Context(), principal(r)
	ks, keyPages, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[store.APIKey], error) { return d.IAM.ListAPIKeys(ctx, p, req) })
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg := apiKeysPage{Keys: ks}
	if p.IsAdmin() {
		// Admins make keys for service IDs (scripts) and other users too.
		for _, kind := range []string{store.KindServiceID, store.KindUser} {
			ids, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.Identity], error) {
				return d.IAM.ListIdentities(ctx, p, kind, req)
			})
			if err != nil {
				d.fail(w, r, err)
				return
			}
			for _, id := range ids {
				if kind == p.SubjectKind && id.Name == p.SubjectName {
					continue
				}
				pg.Owners = append(pg.Owners, kind+":"+id.Name)
			}
		}
	}
	v.Title, v.Nav, v.Page, v.Pager = "API keys", "api-keys", pg, keyPages
	d.render(w, r, status, "apikeys", v)
}

func (d *Dashboard) apiKeysPage(w http.ResponseWriter, r *http.Request) {
	d.showAPIKeys(w, r, http.StatusOK, view{})
}

func (d *Dashboard) createAPIKey(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"name": strings.TrimSpace(r.FormValue("name")), "description": r.FormValue("description"),
		"expires": strings.TrimSpace(r.FormValue("expires"))}
	form["owner"] = r.FormValue("owner")
	in := iam.APIKeyInput{Name: form["name"], Description: form["description"]}
	if form["owner"] != "" {
		// The service decides whether the caller may make keys for others.
		in.OwnerKind, in.OwnerName, _ = strings.Cut(form["owner"], ":")
	}
	if form["expires"] != "" {
		// A date input sends YYYY-MM-DD; the key works through that day (UTC).
		day, err := time.Parse("2006-01-02", form["expires"])
		if err != nil {
			d.showAPIKeys(w, r, http.StatusBadRequest, view{Form: form, FormErr: "expiry must be a date such as 2027-01-31, or empty for a key that does not expire"})
			return
		}
		in.ExpiresAt = day.Add(24*time.Hour - time.Second)
	}
	k, v, err := d.IAM.CreateAPIKey(r.Context(), principal(r), in)
	if err != nil {
		status, msg := d.message(r, err)
		d.showAPIKeys(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	d.render(w, r, http.StatusOK, "shown", view{Title: "API key created", Nav: "api-keys", Page: shownOnce{
		What: "API key " + k.Name, Back: "/settings/api-keys",
		// The download has the shape of IBM Cloud's apikey.json, which
		// App Connect users keep their keys in.
		Fields:     []field{{"API key", v.Reveal(), "api-key", "apikey"}, {"Key id", k.ID, "key-id", "id"}},
		Extra:      []field{{Label: "name", Value: k.Name}, {Label: "description", Value: k.Description}, {Label: "createdAt", Value: k.CreatedAt.UTC().Format(time.RFC3339)}},
		DownloadAs: "apikey-" + k.Name + ".json",
	}})
}

func (d *Dashboard) lockAPIKey(locked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		k, err := d.IAM.SetAPIKeyLocked(r.Context(), principal(r), id, locked)
		if err != nil {
			status, msg := d.message(r, err)
			d.showAPIKeys(w, r, status, view{Error: msg})
			return
		}
		verb := "unlocked"
		if locked {
			verb = "locked"
		}
		d.redirect(w, r, "/settings/api-keys", "API key "+k.Name+" "+verb)
	}
}

func (d *Dashboard) deleteAPIKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := d.IAM.DeleteAPIKey(r.Context(), principal(r), id); err != nil {
		status, msg := d.message(r, err)
		d.showAPIKeys(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/settings/api-keys", "API key "+id+" deleted")
}

// --- form reading ---------------------------------------------------------

// readForm parses a POST's form (multipart for uploads) within the size
// limit, so an oversized upload is refused in words rather than read as
// a form without its CSRF token.
func (d *Dashboard) readForm(w http.ResponseWriter, r *http.Request) error {
	limit := int64(1 << 20)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		limit = d.maxUpload()
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		// Parts beyond 8 MiB go to temporary files, not memory.
		err := r.ParseMultipartForm(8 << 20)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return iam.Invalidf("the upload is larger than the limit of %d bytes", limit)
		}
		if err != nil {
			return iam.Invalidf("the form could not be read: send it again")
		}
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseForm(); err != nil {
		return iam.Invalidf("the form could not be read: send it again")
	}
	return nil
}

// maxUpload is the largest multipart body: the largest BAR plus room for
// the form's other fields.
func (d *Dashboard) maxUpload() int64 {
	max := int64(barstore.DefaultMaxSize)
	if d.BARs != nil && d.BARs.MaxSize > 0 {
		max = d.BARs.MaxSize
	}
	return max + 1<<20
}
