package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// ---- configurations ----

// Configuration is a configuration as the API shows it. Its data is
// write-only: accepted in spec.data, never returned.
type Configuration struct {
	Metadata Metadata            `json:"metadata"`
	Spec     ConfigurationSpec   `json:"spec"`
	Status   ConfigurationStatus `json:"status"`
}

// ConfigurationSpec is what a caller sets; Data is base64.
type ConfigurationSpec struct {
	Type        string  `json:"type"`
	Description string  `json:"description"`
	Data        *string `json:"data,omitempty"`
}

// ConfigurationStatus is what the server reports.
type ConfigurationStatus struct {
	Size      int64  `json:"size"`
	UpdatedBy string `json:"updatedBy,omitempty"`
}

// maxConfigBody bounds a configuration request: base64 of MaxDataSize
// plus room for line breaks and the envelope.
const maxConfigBody = configuration.MaxDataSize*4/3 + 1<<20

func configurationObject(c store.Configuration) Configuration {
	return Configuration{
		Metadata: Metadata{Name: c.Name, CreatedAt: timestamp(c.CreatedAt), CreatedBy: c.CreatedBy, UpdatedAt: timestamp(c.UpdatedAt)},
		Spec:     ConfigurationSpec{Type: c.Type, Description: c.Description},
		Status:   ConfigurationStatus{Size: c.Size, UpdatedBy: c.UpdatedBy},
	}
}

// decodeBase64 accepts standard base64 with or without padding and with
// line breaks (as `base64` wraps at 76 columns).
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("spec.data is not valid base64 (at character %d)", int64(ce))
		}
		return nil, errors.New("spec.data is not valid base64")
	}
	return b, nil
}

func (a *API) listConfigurations(w http.ResponseWriter, r *http.Request) {
	answerList(a, w, r, "configurations", func(req iam.ListRequest) (iam.ListPage[store.Configuration], error) {
		return a.Configs.List(r.Context(), principal(r), req)
	}, configurationObject)
}

func (a *API) getConfiguration(w http.ResponseWriter, r *http.Request) {
	c, err := a.Configs.Get(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, configurationObject(c))
}

func (a *API) putConfiguration(createOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in Configuration
		if err := decodeJSONLimit(w, r, &in, maxConfigBody); err != nil {
			a.fail(w, r, err)
			return
		}
		name, err := nameFor(r, in.Metadata.Name)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		input := configuration.Input{Name: name, Type: in.Spec.Type, Description: in.Spec.Description}
		if in.Spec.Data != nil {
			if input.Data, err = decodeBase64(*in.Spec.Data); err != nil {
				a.fail(w, r, &badRequest{http.StatusBadRequest, "BadRequest", err.Error()})
				return
			}
			if input.Data == nil {
				input.Data = []byte{}
			}
		}
		c, created, err := a.Configs.Put(r.Context(), principal(r), input, createOnly)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, createdStatus(created), configurationObject(c))
	}
}

func (a *API) deleteConfiguration(w http.ResponseWriter, r *http.Request) {
	force, err := forceParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Configs.Delete(r.Context(), principal(r), r.PathValue("name"), force); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listConfigurationTypes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"configurationTypes": configuration.Types()})
}

// ---- BAR files ----

// BARFile is a BAR file as the API shows it. url is what an integration
// runtime's spec.barURL names; scripts read it with jq .url.
type BARFile struct {
	Metadata   Metadata       `json:"metadata"`
	Name       string         `json:"name"`
	URL        string         `json:"url"`
	Size       int64          `json:"size"`
	SHA256     string         `json:"sha256"`
	Project    string         `json:"project"`
	Version    string         `json:"version,omitempty"`
	Flows      []bar.FlowInfo `json:"flows"`
	Endpoints  []bar.Endpoint `json:"endpoints"`
	UploadedAt string         `json:"uploadedAt"`
	UploadedBy string         `json:"uploadedBy"`
}

func (a *API) barObject(f barstore.File) BARFile {
	flows, eps := f.Info.Flows, f.Info.Endpoints
	if flows == nil {
		flows = []bar.FlowInfo{}
	}
	if eps == nil {
		eps = []bar.Endpoint{}
	}
	return BARFile{
		Metadata: Metadata{Name: f.Name, CreatedAt: timestamp(f.UploadedAt), CreatedBy: f.UploadedBy},
		Name:     f.Name, URL: a.BARURL(f.Name), Size: f.Size, SHA256: f.SHA256,
		Project: f.Info.Name, Version: f.Info.Version, Flows: flows, Endpoints: eps,
		UploadedAt: timestamp(f.UploadedAt), UploadedBy: f.UploadedBy,
	}
}

// BARURL is the URL a runtime's spec.barURL names for the BAR file name.
func (a *API) BARURL(name string) string {
	return strings.TrimRight(a.PublicURL, "/") + "/api/v1/bar-files/" + name + "/content"
}

func (a *API) putBARFile(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/octet-stream" && mt != "application/zip" {
		writeError(w, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType",
			fmt.Sprintf("content type %q is not application/octet-stream: send the BAR's bytes (curl --data-binary @file.bar -H 'Content-Type: application/octet-stream')", r.Header.Get("Content-Type")))
		return
	}
	limit := a.BARs.MaxSize
	if limit <= 0 {
		limit = barstore.DefaultMaxSize
	}
	if r.ContentLength > limit {
		writeError(w, r, http.StatusRequestEntityTooLarge, "TooLarge", fmt.Sprintf("the BAR file is %d bytes; the limit is %d", r.ContentLength, limit))
		return
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	f, created, err := a.BARs.Put(r.Context(), principal(r), r.PathValue("name"), body)
	var inv *barstore.InvalidError
	var big *barstore.TooLargeError
	var busy *barstore.BusyError
	switch {
	case errors.As(err, &busy):
		w.Header().Set("Retry-After", strconv.Itoa(int(busy.RetryAfter.Seconds())))
		writeError(w, r, http.StatusServiceUnavailable, "Busy", busy.Error())
		return
	case errors.As(err, &inv):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: errorTitle, Code: http.StatusUnprocessableEntity, Reason: "InvalidBAR",
			Message: inv.Error(), Details: inv.Problems, RequestID: requestID(r)})
		return
	case errors.As(err, &big):
		writeError(w, r, http.StatusRequestEntityTooLarge, "TooLarge", big.Error())
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	writeJSON(w, createdStatus(created), a.barObject(f))
}

func (a *API) listBARFiles(w http.ResponseWriter, r *http.Request) {
	answerList(a, w, r, "barFiles", func(req iam.ListRequest) (iam.ListPage[barstore.File], error) {
		return a.BARs.List(r.Context(), principal(r), req)
	}, a.barObject)
}

func (a *API) getBARFile(w http.ResponseWriter, r *http.Request) {
	f, err := a.BARs.Get(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.barObject(f))
}

// getBARContent streams the BAR's bytes, a chunk at a time from the store.
func (a *API) getBARContent(w http.ResponseWriter, r *http.Request) {
	f, rc, err := a.BARs.Open(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer rc.Close()
	etag := `"` + f.SHA256 + `"`
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, f.Name+".bar"))
	w.Header().Set("ETag", etag)
	if _, err := io.Copy(w, rc); err != nil {
		a.Log.WarnContext(r.Context(), "BAR download cut short", "bar", f.Name, "err", err)
	}
}

func (a *API) deleteBARFile(w http.ResponseWriter, r *http.Request) {
	force, err := forceParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.BARs.Delete(r.Context(), principal(r), r.PathValue("name"), force); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// forceParam reads ?force=true|false.
func forceParam(r *http.Request) (bool, error) {
	switch v := r.URL.Query().Get("force"); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, &badRequest{http.StatusBadRequest, "BadRequest", fmt.Sprintf("force=%q: use force=true or leave it out", v)}
	}
}
