package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/shipyard/shipyard/internal/bay/capability"
	"github.com/shipyard/shipyard/internal/bay/config"
	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/runtime"
	"github.com/shipyard/shipyard/internal/bay/skills"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// Capability is the capability name of the browser.
const Capability = "browser"

// History exec types and the blob kind of traces (upstream names).
const (
	ExecTypeBrowser = "browser"
	ExecTypeBatch   = "browser_batch"
	TraceKind       = "browser_trace"
)

// MaxTraceTextBytes caps each stdout/stderr kept in a stored trace.
const MaxTraceTextBytes = 1 << 20

// Caps is what the service needs of the capability layer: the session-free
// checks, a call on a running session routed to the browser container, and
// history rows.
type Caps interface {
	Check(ctx context.Context, owner, sandboxID, capability string, now time.Time) (*model.Sandbox, *config.Profile, error)
	Run(ctx context.Context, owner, sandboxID, capability string, now time.Time, fn func(context.Context, *capability.Call) error) (*capability.Call, error)
	Record(ctx context.Context, e *model.Execution)
}

// Store is what the service reads and writes directly: trace blobs and the
// released skills it runs.
type Store interface {
	CreateSkillBlob(ctx context.Context, b *store.SkillBlob) error
	GetSkillBlob(ctx context.Context, owner, id string) (*store.SkillBlob, error)
	ListSkillReleases(ctx context.Context, f store.ReleaseFilter) ([]*store.SkillRelease, int, error)
	GetSkillCandidate(ctx context.Context, owner, id string) (*store.SkillCandidate, error)
}

// Service runs browser commands for sandboxes.
type Service struct {
	Caps   Caps
	Store  Store
	Gull   *Client
	Config *config.Config
	Log    *slog.Logger
}

// Meta is what a caller adds to the history row of a call.
type Meta struct {
	Description  *string
	Tags         *string
	Learn        bool
	IncludeTrace bool
}

// Result is the answer of browser/exec.
type Result struct {
	Success         bool
	Output          string
	Error           *string
	ExitCode        int
	ExecutionID     string
	ExecutionTimeMs int64
	TraceRef        *string
}

// BatchOutcome is the answer of browser/exec_batch.
type BatchOutcome struct {
	BatchResult
	ExecutionID     string
	ExecutionTimeMs int64
	TraceRef        *string
}

// SkillRunResult is the answer of browser/skills/{key}/run.
type SkillRunResult struct {
	SkillKey  string
	ReleaseID string
	BatchOutcome
}

// target is where one call goes: a session's browser container, or the
// shared service (session nil).
type target struct {
	sandbox *model.Sandbox
	session *model.Session
	rt      runtime.Target
	shared  bool
}

// SharedFor reports whether a profile's browser calls go to the shared
// browser service: it is enabled and the profile runs no Gull container of
// its own for the browser capability.
func (s *Service) SharedFor(p *config.Profile) bool {
	if s.Config == nil || !s.Config.BrowserService.Enabled {
		return false
	}
	c, ok := p.ContainerFor(Capability)
	return !ok || c.RuntimeType != config.RuntimeGull
}

// do resolves the call's target and runs fn against it. In a session, fn runs
// with the session held in use, watched and recovered by the capability layer.
func (s *Service) do(ctx context.Context, owner, sandboxID string, now time.Time, fn func(context.Context, *target) error) (*target, error) {
	if s.Config != nil && s.Config.BrowserService.Enabled {
		sb, p, err := s.Caps.Check(ctx, owner, sandboxID, Capability, now)
		if err != nil {
			return nil, err
		}
		if s.SharedFor(p) {
			t := &target{sandbox: sb, rt: runtime.Target{Endpoint: strings.TrimRight(s.Config.BrowserService.Endpoint, "/")}, shared: true}
			return t, fn(ctx, t)
		}
	}
	var t *target
	_, err := s.Caps.Run(ctx, owner, sandboxID, Capability, now, func(ctx context.Context, c *capability.Call) error {
		t = &target{sandbox: c.Sandbox, session: c.Session, rt: c.Target}
		return fn(ctx, t)
	})
	return t, err
}

// exec runs one command at t. The shared service's HTTP errors are a failed
// command (upstream), not a failed call.
func (s *Service) exec(ctx context.Context, t *target, cmd string, timeout int) (*Result, error) {
	in := ExecRequest{Cmd: cmd, Timeout: timeout, SandboxID: t.sandbox.ID}
	if t.shared {
		in.CargoID = t.sandbox.CargoID
	}
	r, err := s.Gull.Exec(ctx, t.rt, in)
	if e, ok := errs.As(err); ok && t.shared && e.Details["status"] != nil {
		return &Result{Error: ptr(fmt.Sprintf("Gull returned HTTP %v", e.Details["status"])), ExitCode: -1}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Result{Output: r.Stdout, Error: nonEmpty(r.Stderr), ExitCode: r.ExitCode, Success: r.ExitCode == 0}, nil
}

// Exec runs one command line in the sandbox's browser.
func (s *Service) Exec(ctx context.Context, owner, sandboxID, cmd string, timeout int, meta Meta, now time.Time) (*Result, error) {
	start := time.Now()
	var res *Result
	t, err := s.do(ctx, owner, sandboxID, now, func(ctx context.Context, t *target) (err error) {
		res, err = s.exec(ctx, t, cmd, timeout)
		return err
	})
	if err != nil {
		return nil, err
	}
	res.ExecutionTimeMs = time.Since(start).Milliseconds()
	stderr := ""
	if res.Error != nil {
		stderr = *res.Error
	}
	var payloadRef *string
	if meta.IncludeTrace || meta.Learn {
		payloadRef = s.storeTrace(ctx, t.sandbox.Owner, map[string]any{"kind": "browser_exec_trace", "steps": []any{
			traceStep(Step{Cmd: cmd, Stdout: res.Output, Stderr: stderr, ExitCode: res.ExitCode}, false)}}, now)
	}
	if meta.IncludeTrace {
		res.TraceRef = payloadRef
	}
	res.ExecutionID = s.record(ctx, t, ExecTypeBrowser, cmd, res.Success, res.ExecutionTimeMs, res.Output, res.Error, payloadRef, meta, now)
	return res, nil
}

// ExecBatch runs commands in order; with stopOnError the first failing
// command ends the batch.
func (s *Service) ExecBatch(ctx context.Context, owner, sandboxID string, commands []string, timeout int, stopOnError bool, meta Meta, now time.Time) (*BatchOutcome, error) {
	return s.batch(ctx, owner, sandboxID, commands, timeout, stopOnError, meta, now)
}

func (s *Service) batch(ctx context.Context, owner, sandboxID string, commands []string, timeout int, stopOnError bool, meta Meta, now time.Time) (*BatchOutcome, error) {
	start := time.Now()
	var br *BatchResult
	t, err := s.do(ctx, owner, sandboxID, now, func(ctx context.Context, t *target) (err error) {
		if t.shared {
			br, err = s.sharedBatch(ctx, t, commands, timeout, stopOnError)
			return err
		}
		br, err = s.Gull.ExecBatch(ctx, t.rt, BatchRequest{Commands: commands, Timeout: timeout, StopOnError: stopOnError, SandboxID: t.sandbox.ID})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &BatchOutcome{BatchResult: *br, ExecutionTimeMs: time.Since(start).Milliseconds()}
	var payloadRef *string
	if meta.IncludeTrace || meta.Learn {
		steps := make([]any, 0, len(br.Results))
		for _, st := range br.Results {
			steps = append(steps, traceStep(st, true))
		}
		payloadRef = s.storeTrace(ctx, t.sandbox.Owner, map[string]any{"kind": "browser_batch_trace", "steps": steps,
			"total_steps": br.TotalSteps, "completed_steps": br.CompletedSteps, "success": br.Success, "duration_ms": br.DurationMs}, now)
	}
	if meta.IncludeTrace {
		out.TraceRef = payloadRef
	}
	var outs, errList []string
	for _, st := range br.Results {
		if o := strings.TrimSpace(st.Stdout); o != "" {
			outs = append(outs, o)
		}
		if e := strings.TrimSpace(st.Stderr); e != "" {
			errList = append(errList, e)
		}
	}
	out.ExecutionID = s.record(ctx, t, ExecTypeBatch, strings.Join(commands, "\n"), br.Success, out.ExecutionTimeMs,
		strings.Join(outs, "\n"), nonEmpty(strings.Join(errList, "\n")), payloadRef, meta, now)
	return out, nil
}

// sharedBatch runs a batch on the shared service as single commands (it has
// no batch endpoint upstream), within one overall timeout.
func (s *Service) sharedBatch(ctx context.Context, t *target, commands []string, timeout int, stopOnError bool) (*BatchResult, error) {
	begin := time.Now()
	deadline := begin.Add(time.Duration(timeout) * time.Second)
	br := &BatchResult{Results: []Step{}, TotalSteps: len(commands), Success: true}
	for i, cmd := range commands {
		left := int(time.Until(deadline).Seconds())
		if left < 1 {
			br.Success = false
			break
		}
		stepStart := time.Now()
		r, err := s.exec(ctx, t, cmd, left)
		if err != nil {
			return nil, err
		}
		st := Step{Cmd: cmd, Stdout: r.Output, ExitCode: r.ExitCode, StepIndex: i, DurationMs: time.Since(stepStart).Milliseconds()}
		if r.Error != nil {
			st.Stderr = *r.Error
		}
		br.Results = append(br.Results, st)
		br.CompletedSteps++
		if st.ExitCode != 0 {
			br.Success = false
			if stopOnError {
				break
			}
		}
	}
	br.DurationMs = time.Since(begin).Milliseconds()
	return br, nil
}

// RunSkill runs the commands of the active release of a browser skill.
func (s *Service) RunSkill(ctx context.Context, owner, sandboxID, skillKey string, timeout int, stopOnError bool, meta Meta, now time.Time) (*SkillRunResult, error) {
	if _, _, err := s.Caps.Check(ctx, owner, sandboxID, Capability, now); err != nil {
		return nil, err
	}
	rel, commands, err := s.releasedCommands(ctx, owner, skillKey)
	if err != nil {
		return nil, err
	}
	tags := []string{"skill:" + skillKey, "release:" + rel.ID, "stage:" + rel.Stage}
	if meta.Tags != nil {
		tags = append(tags, *meta.Tags)
	}
	joined := strings.Join(tags, ",")
	meta.Tags = &joined
	meta.Learn = false
	out, err := s.batch(ctx, owner, sandboxID, commands, timeout, stopOnError, meta, now)
	if err != nil {
		return nil, err
	}
	return &SkillRunResult{SkillKey: skillKey, ReleaseID: rel.ID, BatchOutcome: *out}, nil
}

// releasedCommands finds the active release of skillKey (highest version) and
// the commands of its candidate's payload.
func (s *Service) releasedCommands(ctx context.Context, owner, skillKey string) (*store.SkillRelease, []string, error) {
	list, _, err := s.Store.ListSkillReleases(ctx, store.ReleaseFilter{Owner: owner, SkillKey: skillKey, ActiveOnly: true, Limit: 100})
	if err != nil {
		return nil, nil, err
	}
	if len(list) == 0 {
		return nil, nil, errs.Newf(errs.NotFound, "No active release found for skill_key: %s", skillKey)
	}
	rel := slices.MaxFunc(list, func(a, b *store.SkillRelease) int { return int(a.Version - b.Version) })
	bad := func(format string, a ...any) error {
		return errs.Newf(errs.Validation, format, a...).With(map[string]any{"skill_key": skillKey, "release_id": rel.ID})
	}
	cand, err := s.Store.GetSkillCandidate(ctx, owner, rel.CandidateID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, bad("Release %s has no candidate", rel.ID)
	}
	if err != nil {
		return nil, nil, err
	}
	if cand.PayloadRef == nil || *cand.PayloadRef == "" {
		return nil, nil, bad("Skill %s (release %s) has no payload: its candidate has no payload_ref", skillKey, rel.ID)
	}
	id, ok := strings.CutPrefix(*cand.PayloadRef, skills.BlobRefPrefix)
	if !ok || id == "" {
		return nil, nil, bad("Skill %s (release %s) has an unsupported payload_ref: %s", skillKey, rel.ID, *cand.PayloadRef)
	}
	blob, err := s.Store.GetSkillBlob(ctx, owner, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, bad("Skill %s (release %s): payload %s not found", skillKey, rel.ID, *cand.PayloadRef)
	}
	if err != nil {
		return nil, nil, err
	}
	var p struct {
		Commands []any `json:"commands"`
	}
	if json.Unmarshal([]byte(blob.Payload), &p) != nil || len(p.Commands) == 0 {
		return nil, nil, bad("Skill %s (release %s): payload must be an object with a non-empty commands list", skillKey, rel.ID)
	}
	commands := make([]string, 0, len(p.Commands))
	for i, c := range p.Commands {
		cmd, ok := c.(string)
		if !ok || strings.TrimSpace(cmd) == "" || strings.ContainsRune(cmd, 0) {
			return nil, nil, bad("Skill %s (release %s): payload commands[%d] must be a non-empty command line", skillKey, rel.ID, i)
		}
		commands = append(commands, cmd)
	}
	return rel, commands, nil
}

// Trace returns a stored trace of owner. The sandbox must have the browser
// capability (upstream); traces are owner-scoped blobs.
func (s *Service) Trace(ctx context.Context, owner, sandboxID, ref string, now time.Time) (json.RawMessage, error) {
	if _, _, err := s.Caps.Check(ctx, owner, sandboxID, Capability, now); err != nil {
		return nil, err
	}
	id, ok := strings.CutPrefix(ref, skills.BlobRefPrefix)
	if !ok || id == "" {
		return nil, errs.Newf(errs.Validation, "Unsupported trace_ref: %s (expected blob:<id>)", ref)
	}
	b, err := s.Store.GetSkillBlob(ctx, owner, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.Newf(errs.NotFound, "Trace not found: %s", ref)
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(b.Payload), nil
}

// ForgetShared ends a deleted sandbox's session in the shared browser
// service (best effort, as upstream).
func (s *Service) ForgetShared(ctx context.Context, sb *model.Sandbox) {
	if s.Config == nil || !s.Config.BrowserService.Enabled {
		return
	}
	p, ok := s.Config.Profile(sb.ProfileID)
	if !ok || p.Browser != config.BrowserShared {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.Gull.DeleteSession(ctx, strings.TrimRight(s.Config.BrowserService.Endpoint, "/"), sb.ID); err != nil {
		s.Log.WarnContext(ctx, "ending the shared browser session failed", "sandbox_id", sb.ID, "err", err)
	}
}

// traceStep is one step of a stored trace, its texts capped.
func traceStep(st Step, batch bool) map[string]any {
	m := map[string]any{"kind": "individual_action", "cmd": st.Cmd, "stdout": capText(st.Stdout, MaxTraceTextBytes),
		"stderr": capText(st.Stderr, MaxTraceTextBytes), "exit_code": st.ExitCode, "step_index": st.StepIndex}
	if batch {
		m["duration_ms"] = st.DurationMs
	}
	return m
}

// storeTrace saves a trace as a payload blob and returns its ref; a failure
// is logged (the command ran) and gives no ref.
func (s *Service) storeTrace(ctx context.Context, owner string, trace map[string]any, now time.Time) *string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(trace); err != nil {
		s.Log.ErrorContext(ctx, "encoding browser trace", "err", err)
		return nil
	}
	b := &store.SkillBlob{ID: model.NewID("blob"), Owner: owner, Kind: TraceKind,
		Payload: strings.TrimRight(buf.String(), "\n"), CreatedAt: now}
	if err := s.Store.CreateSkillBlob(context.WithoutCancel(ctx), b); err != nil {
		s.Log.ErrorContext(ctx, "storing browser trace", "err", err)
		return nil
	}
	ref := skills.BlobRef(b)
	return &ref
}

func (s *Service) record(ctx context.Context, t *target, typ, code string, ok bool, ms int64, output string, errText, payloadRef *string, meta Meta, now time.Time) string {
	status := "skipped"
	if meta.Learn {
		status = "pending"
	}
	e := &model.Execution{ID: model.NewID("exec"), SandboxID: t.sandbox.ID, Owner: t.sandbox.Owner,
		ExecType: typ, Code: code, Success: ok, ExecutionTimeMs: ms, Output: &output, Error: errText,
		PayloadRef: payloadRef, Description: meta.Description, Tags: meta.Tags, LearnEnabled: meta.Learn,
		LearnStatus: &status, CreatedAt: now}
	if t.session != nil {
		e.SessionID = t.session.ID
	}
	s.Caps.Record(ctx, e)
	return e.ID
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr[T any](v T) *T { return &v }
