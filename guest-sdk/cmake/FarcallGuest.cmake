# CMake helpers for guest programs: static x86-64 executables built against the farcall
# guest SDK. Usable from farcall's own build and from a user's project:
#
#   include(/path/to/farcall/guest-sdk/cmake/FarcallGuest.cmake)
#   farcall_add_program(my_request SOURCES main.c LIBC musl)
#
#   farcall_add_program(NAME SOURCES src... [LIBC glibc|musl] [PIE] [BACKEND] [FLAGS flags...]
#                       [INCLUDES dirs...] [OUTPUT_DIR dir] [NO_SDK])
#
# BACKEND builds a static-PIE that the VMM places in the backend region (guest-virtual
# 0x10000400000 and up), disjoint from request programs (0x400000), so one address means the
# same in both. Backends use glibc (C or C++).
#
# C++ sources (.cc/.cpp) are built with g++ (glibc only: Debian has no libstdc++ for musl).
# The SDK runtime (guest-sdk/src/farcall.c) is linked in unless NO_SDK is given.
set(FARCALL_GUEST_SDK_DIR ${CMAKE_CURRENT_LIST_DIR}/.. CACHE INTERNAL "")

function(farcall_add_program name)
  cmake_parse_arguments(A "PIE;NO_SDK;BACKEND" "LIBC;OUTPUT_DIR" "SOURCES;FLAGS;INCLUDES;DEPENDS" ${ARGN})
  if(NOT A_LIBC)
    set(A_LIBC glibc)
  endif()
  if(NOT A_OUTPUT_DIR)
    set(A_OUTPUT_DIR ${CMAKE_BINARY_DIR}/guests)
  endif()
  set(cxx FALSE)
  set(srcs)
  foreach(s ${A_SOURCES})
    get_filename_component(abs ${s} ABSOLUTE)
    list(APPEND srcs ${abs})
    if(abs MATCHES "\\.(cc|cpp|cxx)$")
      set(cxx TRUE)
    endif()
  endforeach()
  if(A_LIBC STREQUAL "musl")
    if(cxx)
      message(FATAL_ERROR "farcall_add_program(${name}): C++ needs LIBC glibc (no libstdc++ for musl)")
    endif()
    find_program(FARCALL_MUSL_GCC musl-gcc REQUIRED)
    set(cc ${FARCALL_MUSL_GCC})
  elseif(cxx)
    set(cc g++)
  else()
    set(cc gcc)
  endif()
  if(A_PIE)
    set(link -static-pie -fPIE)
  else()
    set(link -static -no-pie -fno-pie)
  endif()
  if(A_BACKEND)
    # Above 4 GiB only position-independent code links, so backends are static-PIE, which the
    # VMM places at the backend region. Debian's musl-gcc cannot make static-PIE: glibc only.
    if(A_LIBC STREQUAL "musl")
      message(FATAL_ERROR "farcall_add_program(${name}): BACKEND programs need LIBC glibc (static-PIE)")
    endif()
    set(link -static-pie -fPIE)
  endif()
  set(sdk)
  if(NOT A_NO_SDK)
    set(sdk ${FARCALL_GUEST_SDK_DIR}/src/farcall.c)
    if(cxx)
      set(sdk -x c ${sdk} -x none)
    endif()
  endif()
  set(incs -I${FARCALL_GUEST_SDK_DIR}/include)
  foreach(i ${A_INCLUDES})
    list(APPEND incs -I${i})
  endforeach()
  set(out ${A_OUTPUT_DIR}/${name})
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${A_OUTPUT_DIR}
    COMMAND ${cc} -O2 -g -Wall ${link} ${incs} ${A_FLAGS} ${srcs} ${sdk} -o ${out}
    DEPENDS ${srcs} ${FARCALL_GUEST_SDK_DIR}/src/farcall.c ${FARCALL_GUEST_SDK_DIR}/include/farcall.h ${FARCALL_GUEST_SDK_DIR}/include/farcall_abi.h ${A_DEPENDS}
    COMMENT "guest program ${name} (${A_LIBC}${cxx})"
    VERBATIM)
  add_custom_target(${name} ALL DEPENDS ${out})
endfunction()
include(${CMAKE_CURRENT_LIST_DIR}/FarcallGen.cmake)
