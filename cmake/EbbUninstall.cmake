# SPDX-License-Identifier: MIT
# cmake/EbbUninstall.cmake - `make uninstall`: removes exactly the files an
# install wrote, as listed in its manifest, and says what it removed.
#   cmake -DMANIFEST=build/install_manifest.txt -P cmake/EbbUninstall.cmake
# The package's own directory (lib/cmake/ebb) goes too once empty; shared
# directories (lib, include, share/man/man3, ...) stay. If libebb.so.0 was
# in the loader's default path, ldconfig forgets it (cmake/EbbLdconfig.cmake).
include("${CMAKE_CURRENT_LIST_DIR}/EbbLdconfig.cmake")

if(NOT MANIFEST)
  message(FATAL_ERROR "ebb: error: no manifest given (-DMANIFEST=build/install_manifest.txt)")
endif()
if(NOT EXISTS "${MANIFEST}")
  message(FATAL_ERROR "ebb: error: ${MANIFEST} not found: nothing was installed from this build (make install writes it)")
endif()

file(STRINGS "${MANIFEST}" files)
set(removed 0)
set(gone 0)
set(package_dirs "")
set(lib_dirs "")
foreach(file IN LISTS files)
  if(NOT EXISTS "${file}" AND NOT IS_SYMLINK "${file}")
    message(STATUS "ebb: already gone: ${file}")
    math(EXPR gone "${gone} + 1")
    continue()
  endif()
  file(REMOVE "${file}")
  message(STATUS "ebb: removed ${file}")
  math(EXPR removed "${removed} + 1")
  get_filename_component(dir "${file}" DIRECTORY)
  get_filename_component(name "${file}" NAME)
  if(name STREQUAL "ebbConfig.cmake")
    list(APPEND package_dirs "${dir}")
  elseif(name STREQUAL "libebb.so.0")
    list(APPEND lib_dirs "${dir}")
  endif()
endforeach()

foreach(dir IN LISTS package_dirs)
  file(GLOB left "${dir}/*")
  if(NOT left)
    file(REMOVE_RECURSE "${dir}")
    message(STATUS "ebb: removed ${dir}/")
  endif()
endforeach()
foreach(dir IN LISTS lib_dirs)
  ebb_ldconfig("${dir}")
endforeach()
message(STATUS "ebb: uninstalled: removed ${removed} files listed in ${MANIFEST}"
  " (${gone} already gone)")
