# SPDX-License-Identifier: MIT
# cmake/EbbInstall.cmake - what `make install` / `cmake --install` puts under
# the prefix, for programs that use ebb from outside this tree:
#   lib/         libebb.so*, libebb.a, libebb-prefix.so*, libebb-prefix.a
#   include/     ebb.h, ebb_snapshot.h
#   lib/pkgconfig/       ebb.pc, ebb-prefix.pc (written at install time, for
#                        the prefix actually installed to)
#   lib/cmake/ebb/       the CMake package: find_package(ebb) gives
#                        ebb::ebb, ebb::ebb-prefix, ebb::ebb-static,
#                        ebb::ebb-prefix-static
#   share/man/   ebb(3) and ebb(7)
# then ldconfig, when that is what lets programs find the library
# (cmake/EbbLdconfig.cmake). Included by the top-level CMakeLists.txt after
# the library targets exist; `make uninstall` undoes it
# (cmake/EbbUninstall.cmake).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(EBB_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ebb)
set(EBB_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The names other projects see, and the same names inside this tree (for a
# project that adds ebb with add_subdirectory).
set_target_properties(ebb PROPERTIES EXPORT_NAME ebb)
set_target_properties(ebb_static PROPERTIES EXPORT_NAME ebb-static)
set_target_properties(ebb_prefix PROPERTIES EXPORT_NAME ebb-prefix)
set_target_properties(ebb_prefix_static PROPERTIES EXPORT_NAME ebb-prefix-static)
foreach(target ebb ebb_static ebb_prefix ebb_prefix_static)
  get_target_property(name ${target} EXPORT_NAME)
  add_library(ebb::${name} ALIAS ${target})
  target_include_directories(${target} INTERFACE $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endforeach()
# A static ebb needs the thread library in the program's link line; the
# shared ones carry it themselves.
find_package(Threads REQUIRED)
target_link_libraries(ebb_static PRIVATE Threads::Threads)
target_link_libraries(ebb_prefix_static PRIVATE Threads::Threads)

install(TARGETS ebb ebb_static ebb_prefix ebb_prefix_static EXPORT ebbTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/ebb.h include/ebb_snapshot.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES man/ebb.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
install(FILES man/ebb.7 DESTINATION ${CMAKE_INSTALL_MANDIR}/man7)

install(EXPORT ebbTargets NAMESPACE ebb:: DESTINATION ${EBB_CMAKE_DIR})
configure_package_config_file(cmake/ebbConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/ebbConfig.cmake
  INSTALL_DESTINATION ${EBB_CMAKE_DIR})
# 0.x: a minor version may change the API, so 0.1 only accepts 0.1.*.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ebbConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ebbConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/ebbConfigVersion.cmake
  DESTINATION ${EBB_CMAKE_DIR})

# pkg-config files name the prefix in plain text, and `cmake --install
# --prefix DIR` chooses it after configuration: so they are written when
# installing, from the prefix of that install.
function(ebb_install_pkgconfig name)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/${name}.pc)
  install(CODE "
    set(PROJECT_VERSION \"${PROJECT_VERSION}\")
    if(IS_ABSOLUTE \"${CMAKE_INSTALL_LIBDIR}\")
      set(EBB_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
    else()
      set(EBB_PC_LIBDIR \"\\\${prefix}/${CMAKE_INSTALL_LIBDIR}\")
    endif()
    if(IS_ABSOLUTE \"${CMAKE_INSTALL_INCLUDEDIR}\")
      set(EBB_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
    else()
      set(EBB_PC_INCLUDEDIR \"\\\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}\")
    endif()
    configure_file(\"${CMAKE_CURRENT_SOURCE_DIR}/${name}.pc.in\" \"${out}\" @ONLY)")
  install(FILES ${out} DESTINATION ${EBB_PKGCONFIG_DIR})
endfunction()
ebb_install_pkgconfig(ebb)
ebb_install_pkgconfig(ebb-prefix)

# Last: ldconfig once the libraries are in place.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(EBB_LIBDIR_CODE "${CMAKE_INSTALL_LIBDIR}")
else()
  set(EBB_LIBDIR_CODE "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}")
endif()
install(CODE "include(\"${CMAKE_CURRENT_SOURCE_DIR}/cmake/EbbLdconfig.cmake\")
  ebb_ldconfig(\"${EBB_LIBDIR_CODE}\")")
