# Turn a file into a C array: awq_default_calib_jsonl / awq_default_calib_jsonl_size.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "// generated from ${IN}\nextern \"C\" const unsigned char awq_default_calib_jsonl[] = {\n${body}0};\nextern \"C\" const unsigned long awq_default_calib_jsonl_size = ${size};\n")
