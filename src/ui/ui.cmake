# The web UI: tools/embed (built first, for the host) gzips every file of web/ (index.html,
# css/, js/), uPlot from web/node_modules and dashboards/*.json into build/ui/assets.c, which
# the tr_ui library serves. uPlot comes from npm (web/package.json, `npm ci` in web/, which
# ./dev runs); when it is missing the UI is left out with a message at configure time and `/`
# answers a page that says how to build it (the dashboards and APIs still work).
add_executable(tr_embed ${CMAKE_SOURCE_DIR}/tools/embed/embed.c)
target_link_libraries(tr_embed PRIVATE PkgConfig::ZLIB)

set(TR_UPLOT ${CMAKE_SOURCE_DIR}/web/node_modules/uplot/dist)
file(GLOB TR_DASHBOARDS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/dashboards/*.json)
set(TR_UI_ARGS)
set(TR_UI_DEPS)
foreach(f ${TR_DASHBOARDS})
  get_filename_component(n ${f} NAME)
  list(APPEND TR_UI_ARGS /ui/dashboards/${n} ${f})
  list(APPEND TR_UI_DEPS ${f})
endforeach()
if(EXISTS ${TR_UPLOT}/uPlot.esm.js)
  set(TR_UI_BUILT 1)
  file(GLOB_RECURSE TR_WEB CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR}/web
       ${CMAKE_SOURCE_DIR}/web/index.html ${CMAKE_SOURCE_DIR}/web/css/*.css ${CMAKE_SOURCE_DIR}/web/js/*.js
       ${CMAKE_SOURCE_DIR}/web/img/*.svg)
  foreach(f ${TR_WEB})
    list(APPEND TR_UI_ARGS /ui/${f} ${CMAKE_SOURCE_DIR}/web/${f})
    list(APPEND TR_UI_DEPS ${CMAKE_SOURCE_DIR}/web/${f})
  endforeach()
  list(APPEND TR_UI_ARGS /ui/vendor/uPlot.esm.js ${TR_UPLOT}/uPlot.esm.js /ui/vendor/uPlot.min.css ${TR_UPLOT}/uPlot.min.css)
  list(APPEND TR_UI_DEPS ${TR_UPLOT}/uPlot.esm.js ${TR_UPLOT}/uPlot.min.css)
else()
  set(TR_UI_BUILT 0)
  message(STATUS "web UI: ${TR_UPLOT}/uPlot.esm.js is missing (run `npm ci` in web/, as ./dev does): "
                 "building without the UI; / will say so")
endif()
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/ui)
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/ui/assets.c
  COMMAND tr_embed ${CMAKE_BINARY_DIR}/ui/assets.c ${TR_UI_BUILT} ${TR_UI_ARGS}
  DEPENDS tr_embed ${TR_UI_DEPS}
  COMMENT "embedding the web UI"
  VERBATIM)
tr_module(tr_ui ui tr_http tr_util PkgConfig::CJSON PkgConfig::LIBEVENT)
target_sources(tr_ui PRIVATE ${CMAKE_BINARY_DIR}/ui/assets.c)
