# Writes the C source that embeds a rule file: cmake -DIN=… -DOUT=… -DNAME=… -P embed.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${NAME} by rules/embed.cmake */\n#include <stddef.h>\n"
  "const char tr_default_rules_name[] = \"${NAME}\";\n"
  "const char tr_default_rules[] = {${bytes}0};\n"
  "const size_t tr_default_rules_len = ${len};\n")
