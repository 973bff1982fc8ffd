package capability

import "testing"

func TestNormalizeTags(t *testing.T) {
	s := func(v string) *string { return &v }
	cases := []struct {
		in   *string
		want *string
	}{
		{nil, nil},
		{s(""), nil},
		{s(" , ,"), nil},
		{s("b, a,b ,c"), s("a,b,c")},
		{s("x"), s("x")},
	}
	for _, c := range cases {
		got := NormalizeTags(c.in)
		if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("%v → %v, want %v", c.in, got, c.want)
		}
	}
}
