// The rulebook language: how two naming conventions of one model family correspond.
// docs/language.md is the reference; this grammar is its syntax and nothing more. Tensor name
// patterns are string literals whose {...} interpolations are parsed separately (entry rule
// `interpolation`) so that their positions map back into the string.
grammar Rules;

rulebook
    : header? item* EOF
    ;

header
    : 'rulebook' name=IDENT '{' headerField* '}'
    ;

headerField
    : 'model_types' STRING (',' STRING)*                        # modelTypes
    | 'description' STRING                                      # description
    | kind=('layout' | 'mcore_layout') name=IDENT (doc=STRING)? '{' layoutPick* '}'   # layoutDecl
    ;

// One choice of a named layout: `hf_experts = fused`.
layoutPick
    : choice=IDENT '=' chosen=IDENT
    ;

item
    : 'include' STRING                                          # include
    | paramDecl                                                 # paramItem
    | 'block' name=IDENT '{' statement* '}'                     # blockDecl
    | 'mapping' from=convention '<->' to=convention '{' statement* '}'   # mappingDecl
    | assertStmt                                                # assertItem
    ;

convention
    : IDENT ('-' IDENT)*
    ;

paramDecl
    : 'param' name=IDENT '=' expr (doc=STRING)?
    ;

statement
    : mapRule                                                   # ruleStmt
    | 'optional' mapRule                                         # optionalRuleStmt
    | 'otherwise' mapRule                                        # otherwiseRuleStmt
    | paramDecl                                                 # localParamStmt
    | assertStmt                                                # assertStmtItem
    | 'for' var=IDENT 'in' range body                           # forStmt
    | ifChain                                                   # ifStmt
    | 'switch' expr '{' switchCase* defaultCase? '}'            # switchStmt
    | 'scope' left=STRING '=' right=STRING body                 # scopeStmt
    | 'use' name=IDENT                                          # useStmt
    | 'choose' name=IDENT '{' variant+ '}'                      # chooseStmt
    | fallback='otherwise'? 'drop' side=convention pattern=STRING 'because' reason=STRING restore?  # dropStmt
    | 'keep' pattern=STRING                                     # keepStmt
    ;

body
    : '{' statement* '}'
    ;

ifChain
    : 'if' cond=expr then=body ('else' (elseBody=body | elseIf=ifChain))?
    ;

switchCase
    : 'case' expr (',' expr)* body
    ;

defaultCase
    : 'default' body
    ;

variant
    : 'variant' name=IDENT (doc=STRING)? body
    ;

restore
    : 'restore' 'copy' source=STRING                            # restoreCopy
    | 'restore' 'fill' '(' value=expr ',' shape=expr ',' dtype=IDENT ')'  # restoreFill
    | 'restore' 'from' 'base' (sources+=STRING (',' sources+=STRING)*)?  # restoreFromBase
    ;

assertStmt
    : 'assert' expr (':' message=STRING)?
    ;

// Both sides are expressions; the checker decides which parts are tensor terms (name
// patterns and ops) and which are plain values.
mapRule
    : left=expr '=' right=expr
    ;

argument
    : var=IDENT 'in' range                                      # bindingArg
    | name=paramName ':' expr                                   # namedArg
    | value=expr ':' size=expr                                  # sizedArg
    | expr                                                      # positionalArg
    ;

// Op parameters may share a name with a keyword (`cast(x, from: BF16, to: F32)`).
paramName
    : IDENT | 'from' | 'copy' | 'fill' | 'base' | 'default' | 'keep'
    ;

range
    : lo=expr '..' hi=expr
    ;

expr
    : primary                                                   # primaryExpr
    | expr '.' IDENT                                            # memberExpr
    | expr '[' expr ']'                                         # indexExpr
    | op=('-' | 'not') expr                                     # unaryExpr
    | expr op=('*' | '/' | '%') expr                            # mulExpr
    | expr op=('+' | '-') expr                                  # addExpr
    | expr op=('<' | '<=' | '>' | '>=') expr                    # compareExpr
    | expr op=('==' | '!=') expr                                # equalExpr
    | expr 'and' expr                                           # andExpr
    | expr 'or' expr                                            # orExpr
    | <assoc=right> expr '??' expr                              # defaultExpr
    ;

primary
    : INT                                                       # intLit
    | FLOAT                                                     # floatLit
    | STRING                                                    # stringLit
    | ('true' | 'false')                                        # boolLit
    | 'null'                                                    # nullLit
    | '[' (expr (',' expr)*)? ']'                               # listLit
    | fn=IDENT '(' (argument (',' argument)*)? ')'              # callExpr
    | IDENT                                                     # nameExpr
    | '(' expr ')'                                              # parenExpr
    ;

// Entry rule for the contents of one {...} in a name pattern: an expression, or a capture
// of the rest of the name ({*rest}).
interpolation
    : '*' IDENT EOF                                             # restCapture
    | expr EOF                                                  # exprInterpolation
    ;

INT     : [0-9]+ ;
FLOAT   : [0-9]+ '.' [0-9]+ ([eE] [+-]? [0-9]+)? | [0-9]+ [eE] [+-]? [0-9]+ ;
IDENT   : [a-zA-Z_] [a-zA-Z_0-9]* ;
STRING  : '"' (~["\\\r\n] | '\\' ["\\nt])* '"' ;
LINE_COMMENT  : '//' ~[\r\n]* -> skip ;
BLOCK_COMMENT : '/*' .*? '*/' -> skip ;
WS      : [ \t\r\n]+ -> skip ;
// Anything else is a lexical error reported with its position.
BAD_CHAR : . ;
