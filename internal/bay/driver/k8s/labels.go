package k8s

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// labelCodec maps Bay's labels to Kubernetes labels and back.
//
// Keys: "bay.<name>" becomes "<prefix>.<name>" (the configured label prefix);
// other keys pass through. Values that Kubernetes refuses as label values
// (longer than 63 characters, or with characters such as '@' an owner may
// contain) are replaced by a digest, "h-<40 hex>", and the exact values are
// kept in an annotation; selectors use the same mapping, so selection stays
// exact and List reports the original values.
type labelCodec struct{ prefix string }

func (c labelCodec) key(k string) string {
	if rest, ok := strings.CutPrefix(k, "bay."); ok {
		return c.prefix + "." + rest
	}
	return k
}

func (c labelCodec) unkey(k string) string {
	if rest, ok := strings.CutPrefix(k, c.prefix+"."); ok {
		return "bay." + rest
	}
	return k
}

// originalsAnnotation holds the exact values of labels whose value was digested.
func (c labelCodec) originalsAnnotation() string { return c.prefix + "/label-values" }

func value(v string) string {
	if len(validation.IsValidLabelValue(v)) == 0 {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "h-" + hex.EncodeToString(sum[:20])
}

// encode returns the Kubernetes labels for labels, and the annotation value
// holding originals ("" when every value was kept as is).
func (c labelCodec) encode(labels map[string]string) (map[string]string, string) {
	out := make(map[string]string, len(labels))
	orig := map[string]string{}
	for k, v := range labels {
		kv := value(v)
		out[c.key(k)] = kv
		if kv != v {
			orig[k] = v
		}
	}
	if len(orig) == 0 {
		return out, ""
	}
	b, _ := json.Marshal(orig)
	return out, string(b)
}

// decode returns Bay's labels from an object's labels and annotations.
func (c labelCodec) decode(labels, annotations map[string]string) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		out[c.unkey(k)] = v
	}
	if a := annotations[c.originalsAnnotation()]; a != "" {
		var orig map[string]string
		if json.Unmarshal([]byte(a), &orig) == nil {
			for k, v := range orig {
				if _, ok := out[k]; ok && value(v) == out[k] {
					out[k] = v
				}
			}
		}
	}
	return out
}

// selector is the label selector matching every one of labels.
func (c labelCodec) selector(labels map[string]string) (string, error) {
	enc, _ := c.encode(labels)
	parts := make([]string, 0, len(enc))
	for k, v := range enc {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return "", &invalidLabelError{key: k, errs: errs}
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ","), nil
}

type invalidLabelError struct {
	key  string
	errs []string
}

func (e *invalidLabelError) Error() string {
	return "k8s: label key " + e.key + ": " + strings.Join(e.errs, "; ")
}
