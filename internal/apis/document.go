package apis

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/iam"
)

// document returns the API's OpenAPI document as JSON, and where it came
// from: the BAR's own file under openapi/ (spec.Document, or the first),
// or one generated from the flows. Either way it must load and validate
// as OpenAPI 3, or the API is refused with the problem named.
func document(spec APISpec, bars []loadedBAR, flows []*flow.Flow) ([]byte, string, error) {
	for _, b := range bars {
		for _, f := range b.project.OpenAPI {
			if spec.Document != "" && f != spec.Document && path.Base(f) != spec.Document {
				continue
			}
			data, err := fs.ReadFile(b.project.Files, f)
			if err != nil {
				return nil, "", fmt.Errorf("apis: read %s of BAR file %s: %w", f, b.name, err)
			}
			doc, err := checkDocument(data, b.project.Files, f)
			if err != nil {
				return nil, "", iam.Invalidf("%s of BAR file %s is not a valid OpenAPI document: %v", f, b.name, err)
			}
			return doc, b.name + ":" + f, nil
		}
	}
	if spec.Document != "" {
		return nil, "", iam.Invalidf("spec.document %s is not an OpenAPI document under openapi/ of the API's BAR files", spec.Document)
	}
	doc, err := generate(spec, bars, flows)
	if err != nil {
		return nil, "", err
	}
	if doc, err = checkDocument(doc, nil, ""); err != nil {
		// A generated document that does not validate is Sluice's bug.
		return nil, "", fmt.Errorf("apis: generated document does not validate: %w", err)
	}
	return doc, "generated", nil
}

// checkDocument loads an OpenAPI 3 document (YAML or JSON) found at file
// in fsys, validates it and returns it as JSON with the references to
// other files of the project (schemas/…) moved inside, so the document
// stands alone for whoever downloads it. References never leave fsys.
func checkDocument(data []byte, fsys fs.FS, file string) ([]byte, error) {
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	js, err := json.Marshal(jsonable(raw))
	if err != nil {
		return nil, err
	}
	l := openapi3.NewLoader()
	var doc *openapi3.T
	if fsys == nil {
		doc, err = l.LoadFromData(js)
	} else {
		l.IsExternalRefsAllowed = true
		l.ReadFromURIFunc = func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
			name := strings.TrimPrefix(path.Clean(u.Path), "/")
			if u.Scheme != "" || u.Host != "" || !fs.ValidPath(name) {
				return nil, fmt.Errorf("reference %s does not name a file of the project", u)
			}
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, fmt.Errorf("reference %s: no such file in the project", name)
			}
			var v any
			if err := yaml.Unmarshal(b, &v); err != nil {
				return nil, fmt.Errorf("reference %s: %v", name, err)
			}
			return json.Marshal(jsonable(v))
		}
		doc, err = l.LoadFromDataWithPath(js, &url.URL{Path: "/" + file})
		if err == nil {
			doc.InternalizeRefs(context.Background(), nil)
			if js, err = doc.MarshalJSON(); err != nil {
				return nil, err
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		return nil, fmt.Errorf("openapi is %q: only OpenAPI 3 documents are served", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		return nil, err
	}
	return js, nil
}

// jsonable turns YAML's map[string]any trees (and any map[any]any) into
// what encoding/json writes.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = jsonable(x)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range v {
			v[i] = jsonable(x)
		}
		return v
	}
	return v
}

// generate writes an OpenAPI 3.0 document from the flows: one operation
// per flow under the base path (server url), its path parameters, the
// schema its first top-level validate step checks the body against, and
// the statuses its steps can answer.
func generate(spec APISpec, bars []loadedBAR, flows []*flow.Flow) ([]byte, error) {
	title := spec.Title
	if title == "" {
		title = bars[0].project.Name
	}
	info := map[string]any{"title": title, "version": spec.Version}
	if spec.Description != "" {
		info["description"] = spec.Description
	}
	schemaFiles := map[string]fs.FS{}
	for _, b := range bars {
		for _, f := range b.project.Flows {
			if f.HTTP != nil {
				schemaFiles[f.Name] = b.project.Files
			}
		}
	}
	paths := map[string]map[string]any{}
	for _, f := range flows {
		p := f.HTTP.Path
		if spec.BasePath != "/" {
			p = strings.TrimPrefix(p, spec.BasePath)
		}
		if p == "" {
			p = "/"
		}
		p = strings.ReplaceAll(strings.ReplaceAll(p, "...}", "}"), "{$}", "")
		if p == "" {
			p = "/"
		}
		op := map[string]any{"operationId": f.Name}
		if f.Description != "" {
			op["summary"] = f.Description
		}
		var params []any
		for _, name := range wildcards(f.HTTP.Path) {
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		c := f.Contract()
		if len(c.RequestSchemas) > 0 {
			data, err := fs.ReadFile(schemaFiles[f.Name], c.RequestSchemas[0])
			if err != nil {
				return nil, fmt.Errorf("apis: schema %s of flow %s: %w", c.RequestSchemas[0], f.Name, err)
			}
			var sch map[string]any
			if err := json.Unmarshal(data, &sch); err != nil {
				return nil, iam.Invalidf("schema %s of flow %s is not JSON: %v", c.RequestSchemas[0], f.Name, err)
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": openAPISchema(sch)}}}
		}
		responses := map[string]any{}
		for _, st := range c.Statuses {
			text := http.StatusText(st)
			if text == "" {
				text = "Status " + strconv.Itoa(st)
			}
			responses[strconv.Itoa(st)] = map[string]any{"description": text}
		}
		op["responses"] = responses
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(f.HTTP.Method)] = op
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    info,
		"servers": []any{map[string]any{"url": spec.BasePath}},
		"paths":   paths,
	}
	return json.Marshal(doc)
}

// openAPISchema keeps the JSON Schema keywords OpenAPI 3.0's schema object
// knows, so the document validates: $schema, $id, $defs and the like go.
func openAPISchema(s map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range s {
		if strings.HasPrefix(k, "$") || k == "definitions" || k == "const" || k == "examples" || k == "if" || k == "then" || k == "else" {
			continue
		}
		switch k {
		case "properties":
			if m, ok := v.(map[string]any); ok {
				props := map[string]any{}
				for name, ps := range m {
					if pm, ok := ps.(map[string]any); ok {
						props[name] = openAPISchema(pm)
					}
				}
				v = props
			}
		case "items", "additionalProperties", "not":
			if m, ok := v.(map[string]any); ok {
				v = openAPISchema(m)
			}
		case "allOf", "anyOf", "oneOf":
			if l, ok := v.([]any); ok {
				var subs []any
				for _, x := range l {
					if m, ok := x.(map[string]any); ok {
						subs = append(subs, openAPISchema(m))
					}
				}
				v = subs
			}
		case "type":
			if l, ok := v.([]any); ok { // 2020-12 type lists: OpenAPI 3.0 has one type and nullable
				var types []string
				nullable := false
				for _, t := range l {
					if t == "null" {
						nullable = true
					} else if s, ok := t.(string); ok {
						types = append(types, s)
					}
				}
				sort.Strings(types)
				if len(types) > 0 {
					v = types[0]
				}
				if nullable {
					out["nullable"] = true
				}
			}
		}
		out[k] = v
	}
	return out
}

// wildcards names a path template's wildcards ({name}, {name...}).
func wildcards(p string) []string {
	var out []string
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(p[i:], '}')
		if j < 0 {
			return out
		}
		if name := strings.TrimSuffix(p[i+1:i+j], "..."); name != "$" && name != "" {
			out = append(out, name)
		}
		p = p[i+j+1:]
	}
}
