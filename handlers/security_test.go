package handlers

import "testing"

func TestTokenMatches(t *testing.T) {
	tests := []struct {
		got, want string
		ok        bool
	}{
		{"831c76b092f9f135d9b6b36c3a720757", "831c76b092f9f135d9b6b36c3a720757", true},
		{"831c76b092f9f135d9b66c3a720757", "831c76b092f9f135d9b6b36c3a720757", false},
		{"831c76b092f9f135d9b6b36c3a720758", "831c76b092f9f135d9b6b36c3a720757", false},
		{"", "831c76b092f9f135d9b6b36c3a720757", false},
		{"", "", false},
		{"anything", "", false},
	}
	for _, tt := range tests {
		if got := tokenMatches(tt.got, tt.want); got != tt.ok {
			t.Errorf("tokenMatches(%q, %q) = %v", tt.got, tt.want, got)
		}
	}
}
