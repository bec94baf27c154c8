/*
 * Runs one vars/*.groovy global variable outside Jenkins, with the pipeline steps it calls bound
 * to real or recording implementations, and writes a JSON record of every call.
 *
 *   JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 groovy jenkins/harness.groovy INPUT.json
 *
 * INPUT.json:
 *   {"script": "vars/mlTrain.groovy",   // the global variable to load, or instead:
 *    "jenkinsfile": "examples/Jenkinsfile", // a whole declarative pipeline to run (see below)
 *    "library": "vars",                  // the shared library's vars/: each file a step the
 *                                        // Jenkinsfile (or the script) may call by its name;
 *                                        // the src/ beside it (as beside a script's own
 *                                        // directory) holds the classes a var imports
 *    "args": {...},                      // the Map passed to call(); omit to call() without one
 *                                        // (an object written {"__map__": [[k, v], ...]} keeps
 *                                        // its key order, which JsonSlurper would not)
 *    "body": "sh 'make'; return 1",      // optional: Groovy source of the block passed as the
 *                                        // last argument, call(args) { <body> }; it sees the
 *                                        // same steps and env
 *    "workspace": "/path",               // where sh runs and relative files resolve (default: cwd)
 *    "env": {"BUILD_TAG": "..."},        // the build's environment (env.X), on top of this process's
 *    "credentials": {"id": "value" or {"username": .., "password": ..}},
 *    "answers": [{"submitter": "name", "parameters": {..}} or {"abort": "name"}, ...], // input answers
 *    "record": "/path/record.json"}      // where the record goes (default: stdout, after the log)
 *
 * The record: {"status": "SUCCESS"|"FAILURE", "error": null|"message", "errorClass": ...,
 * "result": <call()'s return value>, "calls": [{"step": "sh", "args": {...}, ...}, ...]}.
 * The harness exits 0 on SUCCESS, 1 on FAILURE (a pipeline error or exception), 2 on bad input.
 * A Jenkinsfile's record also holds "currentBuild" (its description and result).
 *
 * A Jenkinsfile runs as Declarative Pipeline runs it, for the directives the examples use:
 * `@Library(...) _` is accepted (the library is "library"), `agent` and `options` are recorded,
 * `environment` sets env, the stages' `steps` run in order (`script { }` is a plain block; a
 * stage's `input { }` directive is asked first and its answers are the stage's env) until
 * one fails, the rest are recorded as skipped, then `post` runs its `always`, then `success` or
 * `failure`, then `cleanup` blocks. Each library step called is recorded with its Map.
 *
 * `sh` really runs its script the way Jenkins' `sh` does: written to a file and run with
 * `/bin/sh -xe` (or by its own #! line), in the workspace, with the environment as withEnv left
 * it; its output goes to this process's stderr (the "console"), or is returned with
 * returnStdout; a non-zero exit throws unless returnStatus is set. Everything else is recorded.
 *
 * The console is filtered line by line as Jenkins filters its log: while a withCredentials block
 * runs, its values show as ****; while a `wrap([$class: 'MaskPasswordsBuildWrapper', ...])` block
 * runs, its passwords show as ******** (the Mask Passwords plugin). The record never holds those
 * values: they are replaced the same way in echo messages, withEnv overrides and the recorded
 * environment of sh calls, and a wrap call records each password's sha256, not the password.
 */

import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.security.MessageDigest
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer

/** What `error` throws, like hudson.AbortException: the build fails with this message. */
class PipelineError extends RuntimeException {
    PipelineError(String message) { super(message) }
}

/** `env` as a pipeline sees it: the build's variables, overlaid by the open withEnv blocks. */
class PipelineEnv {
    private final List<Map<String, String>> layers = []

    PipelineEnv(Map<String, String> base) { layers << new LinkedHashMap<String, String>(base) }

    Map<String, String> current() {
        Map<String, String> merged = [:]
        layers.each { merged.putAll(it) }
        merged.findAll { k, v -> v != null }
    }

    void push(Map<String, String> layer) { layers << layer }

    void pop() { layers.remove(layers.size() - 1) }

    def getProperty(String name) { current()[name] }

    void setProperty(String name, value) { layers[0][name] = value == null ? null : value.toString() }

    def getAt(String name) { current()[name] }
}

/**
 * The values Jenkins hides in its log. Masks apply to the console while their block runs; the
 * record is scrubbed of every value ever registered.
 */
class Masks {
    private final List<List<String>> active = []
    private final List<List<String>> registered = []

    /** Register [value, replacement] pairs for a block; returns how many to pop after it. */
    int push(List<List<String>> masks) {
        List<List<String>> usable = masks.findAll { it[0] }
        active.addAll(usable)
        registered.addAll(usable)
        return usable.size()
    }

    void pop(int count) {
        count.times { active.remove(active.size() - 1) }
    }

    String console(String line) { replace(line, active) }

    String scrub(String text) { text == null ? null : replace(text, registered) }

    private static String replace(String text, List<List<String>> masks) {
        // Longest first, so a value that contains another is hidden whole.
        masks.sort(false) { -it[0].length() }.inject(text) { String out, List<String> mask ->
            out.replace(mask[0], mask[1])
        }
    }
}

/** options { }: each option is recorded, none is enforced (a timeout is the test's). */
class OptionsBlock {
    final List<Map> options = []

    def methodMissing(String name, Object args) {
        Object[] given = args as Object[]
        options << [option: name, args: given.length == 1 ? given[0] : given.toList()]
        null
    }
}

/** environment { NAME = value }: each assignment sets the build's env.NAME. */
class EnvironmentBlock extends GroovyObjectSupport {
    private final PipelineEnv pipelineEnv

    EnvironmentBlock(PipelineEnv pipelineEnv) { this.pipelineEnv = pipelineEnv }

    // Reads (env.BUILD_TAG) fall through to the Jenkinsfile, which knows env and the steps.
    Object getProperty(String name) { throw new MissingPropertyException(name, EnvironmentBlock) }

    void setProperty(String name, Object value) { pipelineEnv.setProperty(name, value) }
}

class StagesBlock {
    final List<List> stages = []

    void stage(String name, Closure block) { stages << [name, block] }
}

class StageBlock {
    Closure stepsBlock
    Object agentSpec
    StageInputBlock inputBlock

    void steps(Closure block) { stepsBlock = block }

    void agent(Object spec) { agentSpec = spec instanceof Closure ? 'block' : spec }

    // The stage-level input directive: asked before the stage's agent and steps (see below).
    void input(Closure block) { inputBlock = new StageInputBlock(); PipelineBlock.within(inputBlock, block) }
}

/** input { message ...; ok ...; submitter ...; submitterParameter ...; parameters { ... } }. */
class StageInputBlock {
    final Map args = [:]

    void message(Object value) { args.message = value }

    void id(Object value) { args.id = value }

    void ok(Object value) { args.ok = value }

    void submitter(Object value) { args.submitter = value }

    void submitterParameter(Object value) { args.submitterParameter = value }

    void parameters(Closure block) {
        ParametersBlock parameters = new ParametersBlock()
        PipelineBlock.within(parameters, block)
        args.parameters = parameters.parameters
    }
}

/** parameters { string(name: 'X', defaultValue: '', description: '...'); booleanParam(...) }. */
class ParametersBlock {
    final List<Map> parameters = []

    Object methodMissing(String type, Object arguments) {
        Object[] given = arguments as Object[]
        if (given.length != 1 || !(given[0] instanceof Map) || !given[0].name) {
            throw new IllegalArgumentException("harness: parameter ${type} needs (name: ..., ...)")
        }
        parameters << ([type: type] + (given[0] as Map))
        null
    }
}

class PostBlock {
    final Map<String, Closure> conditions = [:]

    void always(Closure block) { conditions.always = block }

    void success(Closure block) { conditions.success = block }

    void failure(Closure block) { conditions.failure = block }

    void unstable(Closure block) { conditions.unstable = block }

    void cleanup(Closure block) { conditions.cleanup = block }
}

/** pipeline { }: the directives, read before anything runs, as Jenkins reads them. */
class PipelineBlock {
    Object agentSpec
    final OptionsBlock options = new OptionsBlock()
    final List<Closure> environments = []
    Closure stagesBlock
    final PostBlock post = new PostBlock()

    void agent(Object spec) { agentSpec = spec instanceof Closure ? 'block' : spec }

    void options(Closure block) { PipelineBlock.within(options, block) }

    void environment(Closure block) { environments << block }

    void stages(Closure block) { stagesBlock = block }

    void post(Closure block) { PipelineBlock.within(post, block) }

    static Object within(Object delegate, Closure block) {
        Closure copy = block.rehydrate(delegate, block.owner, block.thisObject)
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        copy.call()
    }
}

def fail(String message) {
    System.err.println("harness: ${message}")
    System.exit(2)
}

// Groovy map literals keep their order, and the command a step builds follows it.
Object ordered(Object value) {
    if (value instanceof Map && value.containsKey('__map__')) {
        Map result = [:]
        value.__map__.each { pair -> result[pair[0] as String] = ordered(pair[1]) }
        return result
    }
    if (value instanceof Map) {
        return value.collectEntries { k, v -> [(k): ordered(v)] }
    }
    if (value instanceof List) {
        return value.collect { ordered(it) }
    }
    return value
}

if (args.length != 1) {
    fail('usage: groovy jenkins/harness.groovy INPUT.json')
}
def input = new JsonSlurper().parse(new File(args[0]))
if (!input.script == !input.jenkinsfile) {
    fail("${args[0]}: give \"script\" (the vars/*.groovy file to run) or \"jenkinsfile\", not both")
}
File workspace = new File((input.workspace ?: System.getProperty('user.dir')) as String).canonicalFile
Map<String, String> baseEnv = new LinkedHashMap<String, String>(System.getenv())
baseEnv.put('WORKSPACE', workspace.path)
(input.env ?: [:]).each { k, v -> baseEnv.put(k as String, v == null ? null : v.toString()) }
def env = new PipelineEnv(baseEnv)
Map credentialValues = (input.credentials ?: [:]) as Map
List<Map> calls = []
def masks = new Masks()
def console = new PrintStream(new FileOutputStream(FileDescriptor.err), true, 'UTF-8')

File resolve(File workspace, String path) {
    File file = new File(path)
    file.absolute ? file : new File(workspace, path)
}

// Steps take either named arguments or one positional value, as in Jenkins (sh 'x' == sh(script: 'x')).
Map named(Object arg, String key) {
    arg instanceof Map ? (arg as Map) : [(key): arg]
}

def binding = new Binding()
binding.setVariable('env', env)
binding.setVariable('params', input.params ?: [:])

binding.setVariable('echo', { Object message ->
    calls << [step: 'echo', args: [message: masks.scrub(message as String)]]
    (message as String).readLines().each { String line -> console.println(masks.console(line)) }
})

binding.setVariable('error', { Object message ->
    calls << [step: 'error', args: [message: message as String]]
    throw new PipelineError(message as String)
})

binding.setVariable('sh', { Object arg ->
    Map a = named(arg, 'script')
    String script = a.script as String
    Map record = [step: 'sh', args: a.collectEntries { k, v -> [(k): v] }, env: env.current().findAll { k, v ->
        // Only what differs from this process's own environment: the build's and withEnv's.
        !(System.getenv().containsKey(k) && System.getenv(k) == v)
    }.collectEntries { k, v -> [(k): masks.scrub(v)] }]
    calls << record
    File scriptFile = File.createTempFile('harness-sh-', '.sh')
    try {
        scriptFile.text = script
        List<String> command = script.startsWith('#!') ?
            ['/bin/sh', '-c', 'chmod +x "$1" && exec "$1"', 'sh', scriptFile.path] :
            ['/bin/sh', '-xe', scriptFile.path]
        ProcessBuilder builder = new ProcessBuilder(command).directory(workspace)
        builder.environment().clear()
        builder.environment().putAll(env.current())
        builder.redirectInput(ProcessBuilder.Redirect.from(new File('/dev/null')))
        // The console is this process's stderr, so a record printed on stdout stays clean.
        if (a.returnStdout) {
            builder.redirectError(ProcessBuilder.Redirect.INHERIT)
        } else {
            builder.redirectErrorStream(true)
        }
        Process process = builder.start()
        String stdout = null
        if (a.returnStdout) {
            stdout = process.inputStream.getText('UTF-8')
        } else {
            process.inputStream.withReader('UTF-8') { reader ->
                reader.eachLine { String line -> console.println(masks.console(line)) }
            }
        }
        int status = process.waitFor()
        record.status = status
        if (stdout != null) {
            record.stdout = stdout
        }
        if (a.returnStatus) {
            return status
        }
        if (status != 0) {
            throw new PipelineError("script returned exit code ${status}")
        }
        return stdout
    } finally {
        scriptFile.delete()
    }
})

binding.setVariable('withEnv', { List<String> overrides, Closure body ->
    Map<String, String> layer = [:]
    overrides.each { String item ->
        int eq = item.indexOf('=')
        if (eq < 1) {
            throw new IllegalArgumentException("withEnv: '${item}' is not NAME=VALUE")
        }
        layer[item.substring(0, eq)] = item.substring(eq + 1)
    }
    calls << [step: 'withEnv', args: [overrides: overrides.collect { masks.scrub(it as String) }]]
    env.push(layer)
    try {
        return body.call()
    } finally {
        env.pop()
    }
})

// Credential bindings return descriptions; withCredentials resolves them from input.credentials.
binding.setVariable('string', { Map a -> [type: 'string'] + a })
binding.setVariable('usernamePassword', { Map a -> [type: 'usernamePassword'] + a })
binding.setVariable('file', { Map a -> [type: 'file'] + a })
binding.setVariable('withCredentials', { List bindings, Closure body ->
    calls << [step: 'withCredentials', args: [bindings: bindings]]
    Map<String, String> layer = [:]
    List<File> tempFiles = []
    bindings.each { Map b ->
        def value = credentialValues[b.credentialsId]
        if (value == null) {
            throw new PipelineError("Could not find credentials entry with ID '${b.credentialsId}'")
        }
        switch (b.type) {
            case 'string':
                layer[b.variable as String] = value as String
                break
            case 'usernamePassword':
                layer[b.usernameVariable as String] = value.username as String
                layer[b.passwordVariable as String] = value.password as String
                break
            case 'file':
                File f = File.createTempFile('harness-cred-', '')
                f.text = value as String
                tempFiles << f
                layer[b.variable as String] = f.path
                break
            default:
                throw new IllegalArgumentException("withCredentials: unsupported binding ${b.type}")
        }
    }
    int masked = masks.push(layer.findAll { k, v -> !tempFiles*.path.contains(v) }
        .collect { k, v -> [v, '****'] })
    env.push(layer)
    try {
        return body.call()
    } finally {
        env.pop()
        masks.pop(masked)
        tempFiles*.delete()
    }
})

String sha256(String text) {
    MessageDigest.getInstance('SHA-256').digest(text.getBytes('UTF-8')).encodeHex().toString()
}

// Build wrappers by class name; only the Mask Passwords plugin's is known here.
binding.setVariable('wrap', { Map a, Closure body ->
    if (a['$class'] != 'MaskPasswordsBuildWrapper') {
        throw new IllegalArgumentException("wrap: unsupported wrapper ${a['$class']}")
    }
    List<Map> pairs = (a.varPasswordPairs ?: []) as List<Map>
    calls << [step: 'wrap', args: [
        $class: a['$class'],
        varPasswordPairs: pairs.collect { Map p -> [var: p.var, passwordSha256: sha256(p.password as String)] },
    ]]
    int masked = masks.push(pairs.collect { Map p -> [p.password as String, '********'] })
    try {
        return body.call()
    } finally {
        masks.pop(masked)
    }
})

binding.setVariable('writeFile', { Map a ->
    calls << [step: 'writeFile', args: [file: a.file, encoding: a.encoding]]
    File f = resolve(workspace, a.file as String)
    f.parentFile?.mkdirs()
    f.setText(a.text as String, (a.encoding ?: 'UTF-8') as String)
})

binding.setVariable('readFile', { Object arg ->
    Map a = named(arg, 'file')
    calls << [step: 'readFile', args: a]
    resolve(workspace, a.file as String).getText((a.encoding ?: 'UTF-8') as String)
})

binding.setVariable('fileExists', { Object arg ->
    Map a = named(arg, 'file')
    boolean exists = resolve(workspace, a.file as String).exists()
    calls << [step: 'fileExists', args: a, result: exists]
    exists
})

binding.setVariable('readJSON', { Map a ->
    calls << [step: 'readJSON', args: a.findAll { k, v -> k != 'text' }]
    if (a.file) {
        return new JsonSlurper().parse(resolve(workspace, a.file as String), 'UTF-8')
    }
    return new JsonSlurper().parseText(a.text as String)
})

binding.setVariable('archiveArtifacts', { Object arg ->
    Map a = named(arg, 'artifacts')
    calls << [step: 'archiveArtifacts', args: a]
    null
})

// input: each call takes the next of input.answers, {"submitter": "name"} (the build goes on;
// "parameters": {"NAME": value} answers its parameters, else their defaultValue) or
// {"abort": "name"} (the build stops, as when someone presses Abort). As in Jenkins, the step
// returns nothing without parameters or submitterParameter, the one value when there is one
// (who submitted, for a submitterParameter alone), else a Map of them by name; a submitter
// list that does not name who answers fails the call (Jenkins would not let them answer).
List<Map> inputAnswers = ((input.answers ?: []) as List).collect { it as Map }
binding.setVariable('input', { Object arg ->
    Map a = named(arg, 'message')
    calls << [step: 'input', args: a]
    if (inputAnswers.isEmpty()) {
        throw new PipelineError('harness: input step called with no answer left (give "answers")')
    }
    Map answer = inputAnswers.remove(0)
    if (answer.abort) {
        throw new PipelineError("Aborted by ${answer.abort}")
    }
    String who = answer.submitter as String
    if (a.submitter && !((a.submitter as String).split(',')*.trim().contains(who))) {
        throw new PipelineError("harness: ${who} may not answer (submitter: ${a.submitter})")
    }
    Map values = inputValues(a, answer)
    return values.size() == 1 ? values.values()[0] : (values ?: null)
})

/** The values an input's answer gives, by name: each parameter's, then the submitter's. */
Map inputValues(Map a, Map answer) {
    Map given = (answer.parameters ?: [:]) as Map
    Map values = [:]
    ((a.parameters ?: []) as List).each { Map parameter ->
        String name = parameter.name as String
        values[name] = given.containsKey(name) ? given[name] : parameter.defaultValue
    }
    if (a.submitterParameter) {
        values[a.submitterParameter as String] = answer.submitter as String
    }
    return values
}

// pwd(tmp: true) is the workspace's @tmp sibling, as in Jenkins; it may not exist yet.
binding.setVariable('pwd', { Object... a ->
    boolean tmp = a && a[0] instanceof Map && a[0].tmp
    tmp ? "${workspace.path}@tmp".toString() : workspace.path
})

// --- Declarative Pipeline (a "jenkinsfile" run) ---------------------------------------------

binding.setVariable('script', { Closure block -> block.call() })
binding.setVariable('any', 'any')
binding.setVariable('none', 'none')
Map currentBuild = [result: null, currentResult: 'SUCCESS', description: null]
binding.setVariable('currentBuild', currentBuild)

// Build results from best to worst, as Jenkins orders them: a result only ever gets worse.
List<String> resultOrder = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']
String worse(List<String> order, String a, String b) {
    order.indexOf(a ?: 'SUCCESS') >= order.indexOf(b ?: 'SUCCESS') ? (a ?: 'SUCCESS') : b
}

// catchError(buildResult: 'FAILURE', stageResult: 'FAILURE', message: …) { … }: an error in
// the block is caught, not rethrown (the steps after it run); the build's result becomes
// buildResult (or stays worse) and the message is printed, as Jenkins' catchError does.
binding.setVariable('catchError', { Object... given ->
    Map a = (given.find { it instanceof Map } ?: [:]) as Map
    Closure block = given.find { it instanceof Closure } as Closure
    calls << [step: 'catchError', args: a.collectEntries { k, v -> [(k as String): v as String] }]
    try {
        block.call()
    } catch (Throwable e) {
        String result = (a.buildResult ?: 'FAILURE') as String
        calls << [step: 'catchError', caught: masks.scrub(e.message), buildResult: result,
                  stageResult: (a.stageResult ?: result) as String]
        console.println(masks.console((a.message ?: e.message ?: e.toString()) as String))
        currentBuild.result = worse(resultOrder, currentBuild.result as String, result)
    }
    null
})

// GStrings and the like as plain JSON values, for the record.
Object plain(Object value) {
    if (value instanceof Map) {
        return value.collectEntries { k, v -> [(k as String): plain(v)] }
    }
    if (value instanceof List) {
        return value.collect { plain(it) }
    }
    if (value instanceof CharSequence) {
        return value.toString()
    }
    return value instanceof Closure ? '{ block }' : value
}

// A stage as Declarative runs it: its input directive first (before its agent, so no executor
// waits on a person), whose answers are the stage's environment: each parameter by its name,
// who answered by submitterParameter's; then its agent (recorded), then its steps.
Closure runStage = { StageBlock stage ->
    List<String> answered = []
    if (stage.inputBlock != null) {
        Map a = stage.inputBlock.args
        if (!a.message) {
            throw new PipelineError('harness: a stage input directive needs a message')
        }
        Object value = binding.getVariable('input').call(a)
        List<String> names = ((a.parameters ?: []) as List).collect { it.name as String }
        if (a.submitterParameter) {
            names << (a.submitterParameter as String)
        }
        Map values = names.size() == 1 ? [(names[0]): value] : ((value ?: [:]) as Map)
        answered = values.collect { k, v -> "${k}=${v}".toString() }
    }
    if (stage.agentSpec != null) {
        calls << [step: 'agent', args: [spec: plain(stage.agentSpec)]]
    }
    binding.getVariable('withEnv').call(answered, { -> stage.stepsBlock?.call() })
}

binding.setVariable('pipeline', { Closure block ->
    def pipeline = new PipelineBlock()
    PipelineBlock.within(pipeline, block)
    calls << [step: 'pipeline', args: [agent: plain(pipeline.agentSpec), options: plain(pipeline.options.options)]]
    Throwable failure = null
    try {
        pipeline.environments.each { Closure environment ->
            PipelineBlock.within(new EnvironmentBlock(env), environment)
        }
        def stages = new StagesBlock()
        if (pipeline.stagesBlock != null) {
            PipelineBlock.within(stages, pipeline.stagesBlock)
        }
        stages.stages.each { List stage ->
            String name = stage[0]
            if (failure != null) {
                calls << [step: 'stage', args: [name: name], skipped: true]
                return
            }
            calls << [step: 'stage', args: [name: name]]
            def steps = new StageBlock()
            PipelineBlock.within(steps, stage[1] as Closure)
            try {
                runStage(steps)
            } catch (Throwable e) {
                failure = e
            }
        }
    } catch (Throwable e) {
        failure = failure ?: e
    }
    // A catchError may have set a result already: the build's is the worse of the two.
    String result = worse(resultOrder, currentBuild.result as String, failure == null ? 'SUCCESS' : 'FAILURE')
    currentBuild.currentResult = result
    String outcomeCondition = [SUCCESS: 'success', UNSTABLE: 'unstable'][result] ?: 'failure'
    List<String> conditions = ['always', outcomeCondition, 'cleanup']
    conditions.each { String condition ->
        Closure post = pipeline.post.conditions[condition]
        if (post == null) {
            return
        }
        calls << [step: 'post', args: [condition: condition]]
        try {
            post.call()
        } catch (Throwable e) {
            failure = failure ?: e
        }
    }
    currentBuild.result = worse(resultOrder, result, failure == null ? 'SUCCESS' : 'FAILURE')
    if (failure != null) {
        throw failure
    }
    null
})

// Jenkins compiles libraries with @NonCPS importable without an import; define it for plain Groovy.
def loader = new GroovyClassLoader(this.class.classLoader)
loader.parseClass('''
package com.cloudbees.groovy.cps
import java.lang.annotation.*
@Retention(RetentionPolicy.RUNTIME)
@Target([ElementType.METHOD])
@interface NonCPS {}
''')
// And `@Library('name') _`, which loads a library in Jenkins; here "library" does.
loader.parseClass('''
package org.jenkinsci.plugins.workflow.libs
import java.lang.annotation.*
@Retention(RetentionPolicy.SOURCE)
@interface Library { String[] value() }
''')
def compiler = new CompilerConfiguration()
compiler.addCompilationCustomizers(new ImportCustomizer().addImports(
    'com.cloudbees.groovy.cps.NonCPS', 'org.jenkinsci.plugins.workflow.libs.Library'))
def shell = new GroovyShell(loader, binding, compiler)

// A shared library is loaded whole, as Jenkins loads it: beside vars/ its src/ holds classes
// (src/mlsteps/jenkins/Cli.groovy is mlsteps.jenkins.Cli) that a var imports. They are compiled
// from source on first use, with the same imports as the vars.
List<File> varsDirs = []
if (input.script) {
    varsDirs << new File(input.script as String).absoluteFile.parentFile
}
if (input.library) {
    varsDirs << new File(input.library as String).absoluteFile
}
varsDirs.collect { new File(it.parentFile, 'src') }.findAll { it.isDirectory() }.unique().each { File src ->
    shell.classLoader.addClasspath(src.path)
}

// The library's steps: each vars/NAME.groovy is the step NAME, loaded on its first call and
// sharing this binding (env, the steps), as global variables share a build in Jenkins.
Map<String, Script> libraryScripts = [:]
if (input.library) {
    File vars = new File(input.library as String)
    if (!vars.isDirectory()) {
        fail("\"library\": ${vars} is not a directory")
    }
    vars.listFiles().findAll { it.name.endsWith('.groovy') }.sort { it.name }.each { File file ->
        String name = file.name - '.groovy'
        binding.setVariable(name, { Object... given ->
            calls << [step: name, args: plain(given.find { it instanceof Map })]
            Script step = libraryScripts[name] ?: (libraryScripts[name] = shell.parse(file))
            step.invokeMethod('call', given)
        })
    }
}

Map outcome = [status: 'SUCCESS', error: null, errorClass: null, result: null]
try {
    if (input.jenkinsfile) {
        outcome.result = shell.parse(new File(input.jenkinsfile as String)).run()
    } else {
        File scriptFile = new File(input.script as String)
        Script script = shell.parse(scriptFile)
        // A variable's file name is its step name; record the call itself first.
        calls << [step: scriptFile.name - '.groovy', args: ordered(input.args)]
        List callArgs = input.containsKey('args') ? [ordered(input.args)] : []
        if (input.body != null) {
            // Compiled by the same shell, so the block resolves steps and env through the binding.
            callArgs << shell.evaluate("{ -> ${input.body}\n}")
        }
        outcome.result = script.invokeMethod('call', callArgs as Object[])
    }
} catch (PipelineError e) {
    outcome.status = 'FAILURE'
    outcome.error = e.message
    outcome.errorClass = 'PipelineError'
} catch (Exception e) {
    outcome.status = 'FAILURE'
    outcome.error = e.toString()
    outcome.errorClass = e.class.name
    e.printStackTrace(console)
}
outcome.calls = calls
if (input.jenkinsfile) {
    outcome.currentBuild = currentBuild.collectEntries { k, v -> [(k): v == null ? null : masks.scrub(v as String)] }
}

String json = JsonOutput.prettyPrint(JsonOutput.toJson(outcome))
if (input.record) {
    new File(input.record as String).setText(json, 'UTF-8')
} else {
    println(json)
}
System.exit(outcome.status == 'SUCCESS' ? 0 : 1)
