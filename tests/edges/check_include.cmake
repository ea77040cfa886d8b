# A module edge, checked by compiling: run as
#   cmake -DCC=<compiler> -DINCS=<dir|dir|…> -DOWN=<a header the module may include>
#         -DFORBIDDEN=<a header it may not> -DWORK=<scratch dir> -P check_include.cmake
# with INCS the module's own include path (what CMake gives its sources). A file that
# includes OWN must compile (the path and flags are right); one that also includes FORBIDDEN
# must fail, and fail because FORBIDDEN is not found. Anything else fails the test.
string(REPLACE "|" ";" dirs "${INCS}")
set(flags -fsyntax-only -D_GNU_SOURCE -std=gnu11)
foreach(d ${dirs})
  list(APPEND flags "-I${d}")
endforeach()
file(MAKE_DIRECTORY "${WORK}")
file(WRITE "${WORK}/allowed.c" "#include \"${OWN}\"\nint edges_probe(void);\nint edges_probe(void) { return 0; }\n")
file(WRITE "${WORK}/forbidden.c" "#include \"${OWN}\"\n#include \"${FORBIDDEN}\"\nint edges_probe(void);\nint edges_probe(void) { return 0; }\n")
execute_process(COMMAND ${CC} ${flags} "${WORK}/allowed.c" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "control failed: including ${OWN} with the module's path does not compile:\n${out}")
endif()
execute_process(COMMAND ${CC} ${flags} "${WORK}/forbidden.c" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${FORBIDDEN} compiled with the include path of ${OWN}'s module: the edge is not enforced")
endif()
string(REPLACE "." "\\." pat "${FORBIDDEN}")
if(NOT out MATCHES "${pat}[': ]+(No such file|file not found)")
  message(FATAL_ERROR "the forbidden include failed for another reason:\n${out}")
endif()
message(STATUS "refused as expected: ${FORBIDDEN} from ${OWN}'s module")
