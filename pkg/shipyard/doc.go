// Package shipyard is the Go SDK of Shipyard's Bay (its REST API, /v1).
//
// A Client covers sandboxes (create, list, TTL, stop, delete), Python and
// shell execution (whole answers, or streamed as Server-Sent Events while
// the code runs), background processes (start, list, read output from an
// offset, follow, wait, signal, remove), files (streamed upload and
// download), cargos, execution history, skills, profiles, and an interactive
// terminal (an io.ReadWriteCloser over Bay's WebSocket route).
//
//	c, err := shipyard.New("http://127.0.0.1:8114", os.Getenv("SHIPYARD_ACCESS_TOKEN"))
//	sb, err := c.CreateSandbox(ctx, shipyard.CreateSandboxRequest{Profile: "python-default"})
//	res, err := c.ExecPython(ctx, sb.ID, shipyard.PythonExecRequest{Code: "print(1+1)"})
//
// Errors from Bay are *APIError values carrying Bay's code, HTTP status,
// request id and Retry-After; errors.Is matches them against ErrNotFound,
// ErrSessionNotReady and the other sentinels by code.
//
// Requests that are safe to repeat are retried on transport errors and on
// 429, 502, 503 and 504 (honouring Retry-After): GET, PUT and DELETE, and
// creates, which carry an Idempotency-Key so that Bay answers a repeat with
// the first result. Executions, uploads, process starts and signals are
// never repeated. See WithRetries.
//
// The JSON shapes shared with Bay are in package wire; the types here that
// are aliases of them (Sandbox, Cargo, Process, ...) are the same types.
package shipyard
