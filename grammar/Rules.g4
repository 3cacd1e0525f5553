grammar Rules;
file : EOF ;
WS : [ \t\r\n]+ -> skip ;
