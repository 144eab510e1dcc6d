package client

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
)

// Configuration is a configuration: credentials, settings or certificates a
// runtime is given. Its data is write-only: the client sends it
// base64-encoded and the server never returns it, so Data is empty in
// every answer and is never part of the JSON or YAML a Configuration
// marshals to.
type Configuration struct {
	Metadata Metadata            `json:"metadata"`
	Spec     ConfigurationSpec   `json:"spec"`
	Status   ConfigurationStatus `json:"status"`
}

// ConfigurationSpec is what a caller sets on a configuration.
type ConfigurationSpec struct {
	Type        string `json:"type"` // one of ListConfigurationTypes, e.g. "setdbparms"
	Description string `json:"description"`
	// Data is the configuration's content, raw (not base64). On replace,
	// nil keeps the current data; on create it is required.
	Data []byte `json:"-"`
}

// ConfigurationStatus is what the server reports about a configuration.
type ConfigurationStatus struct {
	Size      int64  `json:"size"` // bytes of data
	UpdatedBy string `json:"updatedBy,omitempty"`
}

// ConfigurationType is one kind of configuration the server accepts.
type ConfigurationType struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Holds       string `json:"holds"`   // what the data is
	Runtime     string `json:"runtime"` // what a runtime does with it
	Secret      bool   `json:"secret"`
}

// configurationBody is a configuration as it is sent, data base64-encoded.
func configurationBody(cfg Configuration) any {
	var in struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Type        string  `json:"type"`
			Description string  `json:"description"`
			Data        *string `json:"data,omitempty"`
		} `json:"spec"`
	}
	in.Metadata.Name = cfg.Metadata.Name
	in.Spec.Type, in.Spec.Description = cfg.Spec.Type, cfg.Spec.Description
	if cfg.Spec.Data != nil {
		d := base64.StdEncoding.EncodeToString(cfg.Spec.Data)
		in.Spec.Data = &d
	}
	return in
}

// ListConfigurations calls GET /api/v1/configurations.
func (c *Client) ListConfigurations(ctx context.Context) ([]Configuration, error) {
	return listAll[Configuration](ctx, c, "/api/v1/configurations", nil, "configurations", 0)
}

// GetConfiguration calls GET /api/v1/configurations/{name}.
func (c *Client) GetConfiguration(ctx context.Context, name string) (Configuration, error) {
	var o Configuration
	err := c.Do(ctx, http.MethodGet, "/api/v1/configurations/"+url.PathEscape(name), nil, nil, &o)
	return o, err
}

// CreateConfiguration calls POST /api/v1/configurations: it creates the
// configuration named by cfg.Metadata.Name and fails with 409 when the
// name is taken. The server validates the data against the type.
func (c *Client) CreateConfiguration(ctx context.Context, cfg Configuration) (Configuration, error) {
	var o Configuration
	err := c.Do(ctx, http.MethodPost, "/api/v1/configurations", nil, configurationBody(cfg), &o)
	return o, err
}

// PutConfiguration calls PUT /api/v1/configurations/{name}: it creates the
// configuration or replaces it (keeping its data when cfg.Spec.Data is nil).
// Runtimes using it pick up the change.
func (c *Client) PutConfiguration(ctx context.Context, cfg Configuration) (Configuration, error) {
	var o Configuration
	err := c.Do(ctx, http.MethodPut, "/api/v1/configurations/"+url.PathEscape(cfg.Metadata.Name), nil, configurationBody(cfg), &o)
	return o, err
}

// DeleteConfiguration calls DELETE /api/v1/configurations/{name}. One that
// integration runtimes use is refused with 409 naming them, unless force.
func (c *Client) DeleteConfiguration(ctx context.Context, name string, force bool) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/configurations/"+url.PathEscape(name), forceQuery(force), nil, nil)
}

// ListConfigurationTypes calls GET /api/v1/configuration-types.
func (c *Client) ListConfigurationTypes(ctx context.Context) ([]ConfigurationType, error) {
	var out struct {
		ConfigurationTypes []ConfigurationType `json:"configurationTypes"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/configuration-types", nil, nil, &out); err != nil {
		return nil, err
	}
	if out.ConfigurationTypes == nil {
		out.ConfigurationTypes = []ConfigurationType{}
	}
	return out.ConfigurationTypes, nil
}

// forceQuery is ?force=true when force is set.
func forceQuery(force bool) url.Values {
	if !force {
		return nil
	}
	return url.Values{"force": {"true"}}
}
