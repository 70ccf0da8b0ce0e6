package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/vigil-video/vigil/config"
)

// Reload makes the running streams match want: it removes streams that are
// gone, adds new ones, and restarts only those whose config changed. Streams
// added through the API and absent from want are removed too, as the config
// file is the source of truth after a reload. It returns the IDs it touched
// and the errors of streams it could not start; the others keep running.
func (p *Pipeline) Reload(ctx context.Context, want []config.Stream) (added, removed, restarted []string, err error) {
	have := map[string]config.Stream{}
	for _, s := range p.snapshotStreams() {
		have[s.cfg.ID] = s.cfg
	}
	wantByID := map[string]bool{}
	var errs []error
	for _, cfg := range want {
		wantByID[cfg.ID] = true
		old, exists := have[cfg.ID]
		switch {
		case !exists:
			if e := p.Add(ctx, cfg); e != nil {
				errs = append(errs, e)
				continue
			}
			added = append(added, cfg.ID)
		case !reflect.DeepEqual(old, cfg):
			if e := p.Remove(ctx, cfg.ID); e != nil && !errors.Is(e, ErrStreamNotFound) {
				errs = append(errs, e)
				continue
			}
			if e := p.Add(ctx, cfg); e != nil {
				errs = append(errs, e)
				continue
			}
			restarted = append(restarted, cfg.ID)
		}
	}
	for id := range have {
		if wantByID[id] {
			continue
		}
		if e := p.Remove(ctx, id); e != nil && !errors.Is(e, ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("removing stream %s: %w", id, e))
			continue
		}
		removed = append(removed, id)
	}
	return added, removed, restarted, errors.Join(errs...)
}
