// Package openapi holds Bay's and Ship's OpenAPI documents, generated from
// their route tables by internal/apispec/specgen. The servers embed and serve
// these files as they are (so neither carries the generator); each server's
// TestOpenAPIFileIsCurrent fails when its file is stale, and
// SHIPYARD_UPDATE_OPENAPI=1 on that test writes it again.
package openapi

import _ "embed"

var (
	//go:embed bay.json
	bay string
	//go:embed ship.json
	ship string
)

// Bay is Bay's document, served at its /openapi.json.
func Bay() string { return bay }

// Ship is Ship's document, served at its /openapi.json.
func Ship() string { return ship }
