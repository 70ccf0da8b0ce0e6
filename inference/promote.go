package inference

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrNotRegistryModel is returned by Promote for a model that is not
// configured by its registry folder.
var ErrNotRegistryModel = errors.New("model is not served from a registry folder")

// Promote makes version the active version of the model served under
// name and loads it now, beside the serving one (probed, and rolled back
// if its outputs turn invalid, as any reload). If it does not load, the
// registry's active version goes back to what it was and the old model
// keeps serving.
func (e *Engine) Promote(name string, version int) error {
	e.mu.RLock()
	cfg, ok := e.cfgs[name]
	e.mu.RUnlock()
	switch {
	case !ok:
		return fmt.Errorf("promoting %s: model %q is not loaded", name, name)
	case !isRegistryModel(cfg.Bundle):
		return fmt.Errorf("promoting %s: %w (bundle %s)", name, ErrNotRegistryModel, cfg.Bundle)
	}
	reg, regName := registryOf(cfg.Bundle)
	prev, err := reg.Active(regName)
	if err != nil {
		return fmt.Errorf("promoting %s: %w", name, err)
	}
	if err := reg.Promote(regName, version); err != nil {
		return err
	}
	e.mu.Lock()
	e.tried[name] = version // the registry watch need not load it again
	e.mu.Unlock()
	if err := e.Load(cfg); err != nil {
		if rerr := reg.Promote(regName, prev); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restoring version %d as the active one: %w", prev, rerr))
		}
		return fmt.Errorf("promoting %s to version %d: %w", name, version, err)
	}
	return nil
}

// servePromote serves POST /api/models/{name}/promote with {"version": N}.
func (e *Engine) servePromote(w http.ResponseWriter, r *http.Request, name string) {
	var req struct {
		Version int `json:"version"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Version < 1 {
		writeJSONError(w, http.StatusBadRequest, `body must be {"version": N} with N >= 1`)
		return
	}
	if err := e.Promote(name, req.Version); err != nil {
		code := http.StatusUnprocessableEntity
		switch {
		case strings.Contains(err.Error(), "is not loaded"):
			code = http.StatusNotFound
		case errors.Is(err, ErrNotRegistryModel):
			code = http.StatusConflict
		}
		writeJSONError(w, code, err.Error())
		return
	}
	m, _ := e.Model(name)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m.Status())
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
