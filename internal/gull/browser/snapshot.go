package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// interactiveRoles get a ref in every snapshot.
var interactiveRoles = map[string]bool{
	"button": true, "link": true, "textbox": true, "searchbox": true, "checkbox": true, "radio": true,
	"combobox": true, "listbox": true, "option": true, "menuitem": true, "menuitemcheckbox": true,
	"menuitemradio": true, "tab": true, "switch": true, "slider": true, "spinbutton": true,
	"treeitem": true, "textarea": true, "PopUpButton": true, "ColorWell": true, "Date": true,
	"DateTime": true, "InputTime": true, "SearchBox": true, "ToggleButton": true,
}

// contentRoles get a ref in a full snapshot (so `get text @eN` reads them).
var contentRoles = map[string]bool{"heading": true, "img": true, "image": true, "cell": true,
	"columnheader": true, "rowheader": true, "paragraph": true, "listitem": true, "alert": true, "status": true}

// skipRoles are flattened away (their children are kept).
var skipRoles = map[string]bool{"generic": true, "none": true, "presentation": true, "InlineTextBox": true,
	"LineBreak": true, "LayoutTable": true, "LayoutTableRow": true, "LayoutTableCell": true}

// refEntry is what a ref points to.
type refEntry struct {
	backend cdp.BackendNodeID
	role    string
	name    string
}

// refTable holds the refs of the last snapshot. They belong to one document
// of one tab: another document (navigation, reload) makes them stale.
type refTable struct {
	tab     target.ID
	loader  cdp.LoaderID
	entries map[string]refEntry
	byNode  map[cdp.BackendNodeID]string
	next    int
}

// axNode is the flattened form used for rendering.
type axNode struct {
	role, name, value string
	props             map[string]any
	backend           cdp.BackendNodeID
	children          []*axNode
	ref               string
}

// snapshotOpts are the switches of `snapshot`.
type snapshotOpts struct {
	interactive bool
	cursor      bool
	compact     bool
	depth       int
	scope       cdp.BackendNodeID // 0: whole page
}

// fetchAXTree returns the page's (or the scoped frame's) accessibility tree.
// Nodes in keep are never flattened away (cursor-interactive elements).
func fetchAXTree(ctx context.Context, frame cdp.FrameID, keep map[cdp.BackendNodeID]bool) (*axNode, error) {
	res, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (accessibility.GetFullAXTreeResult, error) {
		return cdp.Call(ctx, t, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{FrameID: frame})
	})
	if err != nil {
		return nil, fmt.Errorf("read the accessibility tree: %w", err)
	}
	byID := map[accessibility.NodeID]*accessibility.Node{}
	for _, n := range res.Nodes {
		byID[n.NodeID] = n
	}
	if len(res.Nodes) == 0 {
		return &axNode{role: "RootWebArea"}, nil
	}
	var build func(n *accessibility.Node, depth int) []*axNode
	build = func(n *accessibility.Node, depth int) []*axNode {
		if depth > 400 {
			return nil
		}
		var kids []*axNode
		for _, id := range n.ChildIDs {
			if c, ok := byID[id]; ok {
				kids = append(kids, build(c, depth+1)...)
			}
		}
		role := axString(n.Role)
		kept := n.BackendDOMNodeID != 0 && keep[n.BackendDOMNodeID]
		if n.Ignored || (skipRoles[role] && !kept) {
			return kids
		}
		a := &axNode{role: role, name: strings.TrimSpace(axString(n.Name)), value: axString(n.Value),
			backend: n.BackendDOMNodeID, children: kids, props: map[string]any{}}
		if kept && a.name == "" {
			a.name = clip(textOf(kids), 100)
		}
		for _, p := range n.Properties {
			if p.Value != nil {
				a.props[string(p.Name)] = axValue(p.Value)
			}
		}
		if role == "StaticText" {
			// Text identical to the parent's name adds nothing; dropped at render.
			a.role = "text"
		}
		return []*axNode{a}
	}
	roots := build(res.Nodes[0], 0)
	if len(roots) == 1 {
		return roots[0], nil
	}
	return &axNode{role: "RootWebArea", children: roots}, nil
}

// textOf joins the text under nodes (the name of a clickable generic element).
func textOf(nodes []*axNode) string {
	var parts []string
	for _, n := range nodes {
		if n.role == "text" || n.role == "StaticText" {
			parts = append(parts, n.name)
		}
		if t := textOf(n.children); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, " ")
}

func axString(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s any
	if err := json.Unmarshal(v.Value, &s); err != nil {
		return string(v.Value)
	}
	switch x := s.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func axValue(v *accessibility.Value) any {
	var s any
	if len(v.Value) > 0 && json.Unmarshal(v.Value, &s) == nil {
		return s
	}
	return nil
}

// cursorInteractive returns the backend ids of elements that look clickable
// (cursor:pointer, onclick, tabindex) but have no interactive role.
func cursorInteractive(ctx context.Context) (map[cdp.BackendNodeID]bool, error) {
	const js = `(() => { const out = []; for (const el of document.querySelectorAll('body *')) {
	  if (out.length >= 500) break;
	  const tag = el.tagName; if (['A','BUTTON','INPUT','SELECT','TEXTAREA','OPTION','LABEL'].includes(tag)) continue;
	  const st = getComputedStyle(el);
	  const pointer = st.cursor === 'pointer' && (!el.parentElement || getComputedStyle(el.parentElement).cursor !== 'pointer');
	  if (pointer || el.hasAttribute('onclick') || (el.hasAttribute('tabindex') && el.tabIndex >= 0)) out.push(el); }
	  return out; })()`
	return chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (map[cdp.BackendNodeID]bool, error) {
		ids := map[cdp.BackendNodeID]bool{}
		res, err := cdp.Call(ctx, t, runtime.Evaluate, runtime.EvaluateParams{Expression: js, ObjectGroup: "gull"})
		if err != nil || res.Result == nil || res.Result.ObjectID == "" {
			return ids, err
		}
		defer func() {
			_, _ = cdp.Call(ctx, t, runtime.ReleaseObjectGroup, runtime.ReleaseObjectGroupParams{ObjectGroup: "gull"})
		}()
		props, err := cdp.Call(ctx, t, runtime.GetProperties, runtime.GetPropertiesParams{ObjectID: res.Result.ObjectID, OwnProperties: ptr(true)})
		if err != nil {
			return ids, err
		}
		for _, p := range props.Result {
			if p.Value == nil || p.Value.ObjectID == "" || p.Value.Subtype != runtime.RemoteObjectSubtypeNode {
				continue
			}
			d, err := cdp.Call(ctx, t, dom.DescribeNode, dom.DescribeNodeParams{ObjectID: p.Value.ObjectID})
			if err == nil && d.Node != nil {
				ids[d.Node.BackendNodeID] = true
			}
		}
		return ids, nil
	})
}

// render assigns refs and writes the tree. It returns the text and the
// structured form (for --json).
func render(root *axNode, opts snapshotOpts, clickable map[cdp.BackendNodeID]bool, refs *refTable) (string, []map[string]any) {
	var b strings.Builder
	var items []map[string]any
	start := []*axNode{root}
	if opts.scope != 0 {
		start = nil
		var find func(n *axNode) bool
		find = func(n *axNode) bool {
			if n.backend == opts.scope {
				start = []*axNode{n}
				return true
			}
			return slices.ContainsFunc(n.children, find)
		}
		if !find(root) {
			// The scope element itself is flattened away: take the nodes
			// under it that the tree still has (nothing when it has none).
			return "", nil
		}
	}
	var walk func(n *axNode, depth int, parentName string)
	walk = func(n *axNode, depth int, parentName string) {
		if opts.depth > 0 && depth > opts.depth {
			return
		}
		interactive := interactiveRoles[n.role] || (n.backend != 0 && clickable[n.backend])
		show := true
		switch {
		case n.role == "RootWebArea":
			show = false
		case n.role == "text":
			show = !opts.interactive && n.name != "" && n.name != parentName
		case opts.interactive:
			show = interactive
		case opts.compact:
			show = interactive || n.name != "" || contentRoles[n.role]
		}
		next := depth
		if show {
			role := n.role
			if clickable[n.backend] && !interactiveRoles[n.role] {
				role = "clickable"
			}
			if (interactive || contentRoles[n.role]) && n.backend != 0 {
				n.ref = refs.add(n.backend, role, n.name)
			}
			indent := ""
			if !opts.interactive {
				indent = strings.Repeat("  ", depth)
			}
			b.WriteString(indent)
			b.WriteString("- ")
			if n.ref != "" {
				b.WriteString("@" + n.ref + " ")
			}
			if n.role == "text" {
				b.WriteString(strconv.Quote(clip(n.name, 300)))
			} else {
				b.WriteString("[" + role + "]")
				if n.name != "" {
					b.WriteString(" " + strconv.Quote(clip(n.name, 200)))
				}
			}
			state := describeState(n)
			if state != "" {
				b.WriteString(" " + state)
			}
			b.WriteString("\n")
			item := map[string]any{"role": role, "name": n.name}
			if n.ref != "" {
				item["ref"] = "@" + n.ref
			}
			if n.value != "" {
				item["value"] = n.value
			}
			if !opts.interactive {
				item["depth"] = depth
			}
			items = append(items, item)
			next = depth + 1
		}
		for _, c := range n.children {
			walk(c, next, n.name)
		}
	}
	for _, n := range start {
		walk(n, 0, "")
	}
	return b.String(), items
}

func describeState(n *axNode) string {
	var parts []string
	if n.value != "" && n.role != "text" {
		parts = append(parts, "value="+strconv.Quote(clip(n.value, 200)))
	}
	if lvl, ok := n.props["level"]; ok && n.role == "heading" {
		parts = append(parts, fmt.Sprintf("level=%v", lvl))
	}
	for _, p := range []string{"checked", "pressed", "selected", "expanded"} {
		if v, ok := n.props[p]; ok && v != nil && v != false && v != "false" {
			parts = append(parts, fmt.Sprintf("%s=%v", p, v))
		}
	}
	for _, p := range []string{"disabled", "required", "readonly"} {
		if v, ok := n.props[p]; ok && v == true {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

func (r *refTable) reset(tab target.ID, loader cdp.LoaderID) {
	r.tab, r.loader = tab, loader
	r.entries = map[string]refEntry{}
	r.byNode = map[cdp.BackendNodeID]string{}
	r.next = 0
}

func (r *refTable) add(backend cdp.BackendNodeID, role, name string) string {
	if id, ok := r.byNode[backend]; ok {
		return id
	}
	r.next++
	id := "e" + strconv.Itoa(r.next)
	r.entries[id] = refEntry{backend: backend, role: role, name: name}
	r.byNode[backend] = id
	return id
}

func ptr[T any](v T) *T { return &v }
