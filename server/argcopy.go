package server

import "slices"

// copyArgs returns a copy of event arguments that shares no map, slice or
// byte slice with args, for code that reads them later on another
// goroutine (OnAnyOutgoing handlers, the Admin UI's events feed) while the
// application or a handler may go on changing what it passed. Other values
// (strings, numbers, structs held by value) are kept as they are; what
// pointers point to is shared, as Node shares the objects it passes.
func copyArgs(args []any) []any {
	if args == nil {
		return nil
	}
	out := make([]any, len(args))
	for i, v := range args {
		out[i] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = copyValue(e)
		}
		return m
	case []any:
		return copyArgs(x)
	case []byte:
		return slices.Clone(x)
	case []string:
		return slices.Clone(x)
	case map[string]string:
		m := make(map[string]string, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m
	default:
		return v
	}
}
