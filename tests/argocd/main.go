// Evaluates an Argo CD health script with gopher-lua, the Lua engine Argo CD embeds, the way Argo CD
// does: the object (JSON on stdin) as the global `obj`, the returned table's status and message.
//
//	go run . path/to/health.lua < object.json   # prints {"status":…,"message":…}
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch t := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(t)
	case float64:
		return lua.LNumber(t)
	case string:
		return lua.LString(t)
	case []interface{}:
		table := L.NewTable()
		for _, item := range t {
			table.Append(toLua(L, item))
		}
		return table
	case map[string]interface{}:
		table := L.NewTable()
		for k, item := range t {
			table.RawSetString(k, toLua(L, item))
		}
		return table
	}
	return lua.LNil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: health HEALTH.lua < OBJECT.json")
		os.Exit(2)
	}
	var obj map[string]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&obj); err != nil {
		fmt.Fprintln(os.Stderr, "reading the object:", err)
		os.Exit(1)
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	// The libraries Argo CD opens for health scripts.
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoFile(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "running the script:", err)
		os.Exit(1)
	}
	result, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		fmt.Fprintln(os.Stderr, "the script did not return a table")
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]string{
		"status":  result.RawGetString("status").String(),
		"message": result.RawGetString("message").String(),
	})
	fmt.Println(string(out))
}
