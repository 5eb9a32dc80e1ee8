// A static Lua 5.4 interpreter over Debian's liblua5.4.a: runs the script in argv[1] (a chunk
// of text, not a file name) with the standard libraries, arguments after it in `arg`.
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: lua CHUNK [ARGS...]\n");
    return 2;
  }
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_createtable(L, argc, 0);
  for (int i = 2; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  int rc = luaL_dostring(L, argv[1]);
  if (rc != LUA_OK) fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
  fflush(stdout);
  lua_close(L);
  return rc == LUA_OK ? 0 : 1;
}
