package store

import "testing"

func TestChangedNothing(t *testing.T) {
	for _, c := range []struct {
		evidence string
		want     bool
	}{
		{``, false},
		{`{}`, false},
		{`{"actions":[{"change":{"none":true,"summary":"nothing to change"},"driver":"apt","index":0}]}`, true},
		{`{"actions":[{"change":{"none":false},"outcome":{"summary":"already in place, nothing changed"}}]}`, true},
		{`{"actions":[{"change":{"none":false},"outcome":{"changed":[{"name":"openssl","from":"3.0.14","to":"3.0.15"}]}}]}`, false},
		{`{"actions":[{"change":{"none":true}},{"outcome":{"changed":[{"name":"nginx"}]}}]}`, false},
		{`{"actions":[{"change":{"none":false}}]}`, false}, // not applied yet, or no outcome recorded
		{`not json`, false},
	} {
		if got := changedNothing(c.evidence); got != c.want {
			t.Errorf("changedNothing(%s) = %v, want %v", c.evidence, got, c.want)
		}
	}
}
