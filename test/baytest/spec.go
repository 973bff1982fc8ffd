package baytest

import (
	"sync"

	"github.com/shipyard/shipyard/internal/apispec"
	"github.com/shipyard/shipyard/internal/bay/api"
)

var (
	specOnce    sync.Once
	specChecker *apispec.Checker
	specErr     error
)

// Spec returns the checker of Bay's OpenAPI document (the one served at
// /openapi.json), built once per test binary.
func Spec() (*apispec.Checker, error) {
	specOnce.Do(func() {
		doc, err := api.OpenAPI()
		if err != nil {
			specErr = err
			return
		}
		specChecker, specErr = apispec.NewChecker(doc)
	})
	return specChecker, specErr
}
