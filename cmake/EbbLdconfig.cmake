# SPDX-License-Identifier: MIT
# cmake/EbbLdconfig.cmake - ebb_ldconfig(LIBDIR): after libebb was installed
# into (or removed from) LIBDIR, refresh the dynamic loader's cache when
# that is what makes programs find it: run as root, not into a staging
# DESTDIR, and LIBDIR among the directories ldconfig scans (its trusted
# directories and /etc/ld.so.conf). Anywhere else the cache is not what
# finds the library - an rpath or LD_LIBRARY_PATH is (README: "Linking") -
# and it says so. Runs in install scripts and `cmake -P`.
function(ebb_ldconfig libdir)
  if(NOT "$ENV{DESTDIR}" STREQUAL "")
    message(STATUS "ebb: not running ldconfig: DESTDIR is set (a staged install)")
    return()
  endif()
  execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT uid STREQUAL "0")
    message(STATUS "ebb: not running ldconfig: not root (as root, run ldconfig if ${libdir} is in the loader's path)")
    return()
  endif()
  find_program(ldconfig_exe ldconfig PATHS /sbin /usr/sbin NO_CACHE)
  if(NOT ldconfig_exe)
    message(STATUS "ebb: not running ldconfig: no ldconfig found")
    return()
  endif()
  if(NOT EXISTS "${libdir}")
    return() # an uninstall that removed the directory: nothing is cached from it
  endif()
  ebb_loader_dirs("${ldconfig_exe}" dirs)
  get_filename_component(real "${libdir}" REALPATH)
  list(FIND dirs "${real}" found) # not IN_LIST: install scripts run under the old policy
  if(found EQUAL -1)
    message(STATUS "ebb: not running ldconfig: ${libdir} is not in the loader's default path "
      "(programs find libebb there through an rpath or LD_LIBRARY_PATH: README, Linking)")
    return()
  endif()
  execute_process(COMMAND "${ldconfig_exe}" RESULT_VARIABLE rc)
  if(rc EQUAL 0)
    message(STATUS "ebb: ran ldconfig: ${libdir} is in the loader's default path")
  else()
    message(WARNING "ebb: warning: ldconfig failed (${rc}); programs may not find libebb.so.0 until it is run")
  endif()
endfunction()

# The directories ldconfig scans, symbolic links resolved: `ldconfig -v -N`
# (no cache written) prints each as "DIR: (from ...)" before its libraries.
function(ebb_loader_dirs ldconfig_exe out)
  execute_process(COMMAND "${ldconfig_exe}" -v -N OUTPUT_VARIABLE text ERROR_QUIET)
  string(REGEX MATCHALL "(^|\n)/[^:\n]*:" lines "${text}")
  set(dirs "")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^\n?(/[^:\n]*):$" "\\1" dir "${line}")
    get_filename_component(dir "${dir}" REALPATH)
    list(APPEND dirs "${dir}")
  endforeach()
  set(${out} "${dirs}" PARENT_SCOPE)
endfunction()
