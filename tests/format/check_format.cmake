# Fails when a C/C++ file under src/ or tests/ differs from what clang-format makes of it
# (.clang-format at the root). Run: cmake -DROOT=<source dir> -DCLANG_FORMAT=<path> -P this.
file(GLOB_RECURSE files ${ROOT}/src/*.c ${ROOT}/src/*.h ${ROOT}/src/*.cc ${ROOT}/tests/*.c ${ROOT}/tests/*.h
     ${ROOT}/tools/*.c)
list(FILTER files EXCLUDE REGEX "/node_modules/|/corpus/")
execute_process(COMMAND ${CLANG_FORMAT} --dry-run -Werror ${files}
                RESULT_VARIABLE rc ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  string(SUBSTRING "${out}" 0 4000 head)
  message(FATAL_ERROR "clang-format would change these files (run clang-format -i on them):\n${head}")
endif()
list(LENGTH files n)
message(STATUS "clang-format: ${n} files as formatted")
