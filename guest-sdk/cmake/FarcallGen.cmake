# farcall_generate(): generate stubs from FlatBuffers rpc_service schemas during a guest build.
#
#   include(/path/to/farcall/guest-sdk/cmake/FarcallGen.cmake)   # FarcallGuest.cmake does it
#   farcall_generate(TARGET kv_stubs SCHEMAS kv.fbs OUT ${CMAKE_CURRENT_BINARY_DIR}/gen
#                    [LANGS ts,cpp,c,server] [INCLUDES dirs...])
#   farcall_add_program(kv_backend SOURCES backend.cc BACKEND INCLUDES .../gen/cpp
#                       DEPENDS kv_stubs ${FARCALL_GEN_STAMP_kv_stubs})
#
# It runs `farcall gen` and touches a stamp, ${FARCALL_GEN_STAMP_<TARGET>}, that programs can
# depend on. Generated files whose content did not change keep their timestamps. The generator
# is the installed package's compiled one (dist/src/gen/main.js); in a clone of farcall, where
# src/gen/*.ts is there, it is compiled on demand into <build>/farcall-gen with the clone's tsc,
# so a guest build does not wait for the whole TypeScript build. The same file, run as a script
# (cmake -P FarcallGen.cmake), is the build step itself.
if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  # ---- script mode: find (or compile) the generator, then run it ---------------------------
  find_program(NODE node REQUIRED)
  if(EXISTS ${FARCALL_GEN_ROOT}/src/gen/main.ts)
    set(tool ${FARCALL_GEN_BUILD}/farcall-gen)
    file(GLOB sources ${FARCALL_GEN_ROOT}/src/gen/*.ts)
    set(stale FALSE)
    if(NOT EXISTS ${tool}/main.js)
      set(stale TRUE)
    else()
      foreach(s ${sources})
        if(${s} IS_NEWER_THAN ${tool}/main.js)
          set(stale TRUE)
        endif()
      endforeach()
    endif()
    if(stale)
      execute_process(
        COMMAND ${NODE} ${FARCALL_GEN_ROOT}/node_modules/typescript/bin/tsc
          --outDir ${tool} --rootDir ${FARCALL_GEN_ROOT}/src/gen --module commonjs --target ES2022
          --moduleResolution node --strict --esModuleInterop --skipLibCheck --types node
          ${FARCALL_GEN_ROOT}/src/gen/main.ts
        RESULT_VARIABLE rc)
      if(NOT rc EQUAL 0)
        message(FATAL_ERROR "farcall_generate: compiling the generator (src/gen) failed; run `npm ci` in ${FARCALL_GEN_ROOT}")
      endif()
    endif()
    set(main ${tool}/main.js)
  else()
    set(main ${FARCALL_GEN_ROOT}/dist/src/gen/main.js)
    if(NOT EXISTS ${main})
      message(FATAL_ERROR "farcall_generate: ${main} is missing: reinstall farcall (npm install farcall)")
    endif()
  endif()
  string(REPLACE "|" ";" schemas "${FARCALL_GEN_SCHEMAS}")
  set(incs)
  if(FARCALL_GEN_INCLUDES)
    string(REPLACE "|" ";" inc_list "${FARCALL_GEN_INCLUDES}")
    set(incs -I ${inc_list})
  endif()
  execute_process(
    COMMAND ${NODE} ${main} gen ${schemas} --out ${FARCALL_GEN_OUT} --lang ${FARCALL_GEN_LANGS} --quiet ${incs}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "farcall_generate: farcall gen failed (see above)")
  endif()
  file(TOUCH ${FARCALL_GEN_STAMP})
  return()
endif()

get_filename_component(_farcall_gen_root ${CMAKE_CURRENT_LIST_DIR}/../.. ABSOLUTE)
set(FARCALL_GEN_ROOT ${_farcall_gen_root} CACHE INTERNAL "")
set(FARCALL_GEN_SCRIPT ${CMAKE_CURRENT_LIST_FILE} CACHE INTERNAL "")

function(farcall_generate)
  cmake_parse_arguments(A "" "TARGET;OUT;LANGS" "SCHEMAS;INCLUDES" ${ARGN})
  if(NOT A_TARGET OR NOT A_SCHEMAS OR NOT A_OUT)
    message(FATAL_ERROR "farcall_generate(TARGET name SCHEMAS files... OUT dir [LANGS ts,cpp,c,server] [INCLUDES dirs...])")
  endif()
  if(NOT A_LANGS)
    set(A_LANGS ts,cpp,c,server)
  endif()
  set(schemas)
  foreach(s ${A_SCHEMAS})
    get_filename_component(abs ${s} ABSOLUTE)
    list(APPEND schemas ${abs})
  endforeach()
  string(REPLACE ";" "|" schemas_arg "${schemas}")
  string(REPLACE ";" "|" includes_arg "${A_INCLUDES}")
  file(GLOB gen_sources ${FARCALL_GEN_ROOT}/src/gen/*.ts ${FARCALL_GEN_ROOT}/dist/src/gen/*.js ${FARCALL_GEN_ROOT}/src/gen/runtime/*)
  set(stamp ${CMAKE_CURRENT_BINARY_DIR}/${A_TARGET}.stamp)
  add_custom_command(
    OUTPUT ${stamp}
    COMMAND ${CMAKE_COMMAND} -DFARCALL_GEN_ROOT=${FARCALL_GEN_ROOT} -DFARCALL_GEN_BUILD=${CMAKE_BINARY_DIR}
      -DFARCALL_GEN_SCHEMAS=${schemas_arg} -DFARCALL_GEN_INCLUDES=${includes_arg} -DFARCALL_GEN_OUT=${A_OUT}
      -DFARCALL_GEN_LANGS=${A_LANGS} -DFARCALL_GEN_STAMP=${stamp} -P ${FARCALL_GEN_SCRIPT}
    DEPENDS ${schemas} ${gen_sources} ${FARCALL_GEN_ROOT}/idl/farcall.fbs
    COMMENT "farcall gen ${A_TARGET} (${A_LANGS})"
    VERBATIM)
  add_custom_target(${A_TARGET} DEPENDS ${stamp})
  set(FARCALL_GEN_STAMP_${A_TARGET} ${stamp} PARENT_SCOPE)
endfunction()
