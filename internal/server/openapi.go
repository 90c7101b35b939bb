package server

import _ "embed"

// openAPI describes the REST API v1 and the agent channel. openapi_test.go
// keeps it in sync with the routes the server registers and with the api
// types (regenerate its schemas with `go test -run TestOpenAPI -rewrite`).
//
//go:embed openapi.json
var openAPI []byte
