/*
 * mlTrain: run `mlsteps train` (a training image as an MLflow run) and return its outputs.
 *
 *   def result = mlTrain(image: 'trainer:1.2', command: ['python', 'train.py'], gpus: 'all')
 *   echo "MLflow run ${result['run-id']}"
 *
 * Keys are the `mlsteps train` options in camelCase (option `shm-size` is key `shmSize`); see
 * mlTrain.txt. Behaviour lives in mlsteps: this step only builds the command line, runs it and
 * reads back the outputs file mlsteps writes.
 */

import mlsteps.jenkins.Cli

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        image: null,         // Training image, e.g. registry.example/trainer:1.4 (needed with backend: 'docker')
        command: [],         // Command and arguments to run (on the CLI: after --); a List or a String of shell words
        backend: null,       // docker runs the image; local runs the command as a process on this machine
        workdir: null,       // Working directory of the training command: in the container
        env: [],             // Environment for the command, KEY=VALUE; a List or a Map
        secretEnv: [],       // Names of environment variables passed in as secrets, a List
        secretsAsEnv: null,  // true passes the secretEnv values as environment variables instead of files
        mount: [],           // Bind mount into the container, host:container[:ro]; a List
        dataDir: null,       // Training data, mounted read-only at /data; its content digest is tagged on the run
        outputDir: null,     // Directory mounted at /output for the command's files
        gpus: null,          // GPUs for the container: all, none, auto, a count such as 2, or device ids such as 0,2
        shmSize: null,       // Size of /dev/shm, e.g. 2g
        memory: null,        // Memory limit, e.g. 8g
        cpus: null,          // CPU limit, e.g. 1.5
        user: null,          // User (name or uid[:gid]) the command runs as in the container
        network: null,       // Docker network
        timeout: null,       // Stop the training after this long, e.g. 90m or 2h
        pull: null,          // When to pull the image: always, missing or never (mlsteps: missing)
        label: [],           // Container label, key=value; a List or a Map
        platform: null,      // Image platform, e.g. linux/amd64
        runId: null,         // Continue this MLflow run instead of creating one
        runName: null,       // Name of the new MLflow run
        trackingUri: null,   // MLflow tracking server, e.g. http://127.0.0.1:5000 (none: nothing is tracked)
        experiment: null,    // MLflow experiment name (mlsteps: Default)
        config: null,        // Path of an mlsteps.yaml
        mlsteps: 'mlsteps',  // The mlsteps executable: a path, or a List of words, e.g. ['python3', '-m', 'steps']
    ]
    Cli cli = new Cli(this, 'mlTrain')
    // The forms a key's value may take (generated from the option table: python -m steps.faces);
    // keys not listed take one String or number.
    Map<String, String> forms = [command: Cli.WORDS, env: Cli.PAIRS, secretEnv: Cli.WORDS, secretsAsEnv: Cli.BOOLEAN,
                                 mount: Cli.WORDS, label: Cli.PAIRS, mlsteps: Cli.WORDS]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    // Values that are not `train` flags travel as the environment mlsteps reads; withEnv does not
    // pass them through a shell, so they need no quoting.
    List<String> environment = Cli.mlflowEnvironment(config)
    if (config.command instanceof CharSequence && config.command) {
        environment << "MLSTEPS_TRAIN_COMMAND=${config.command}".toString()
    }

    int status = cli.run('train', trainCommand(config, defaultConfig), environment, null)
    Map outputs = cli.outputs()
    cli.archiveSummary()
    if (status != 0) {
        error cli.failure('train', status, [:]) + trainDetails(outputs)
    }
    return outputs
}

// The flags, then a List command after `--` (a String one travels as MLSTEPS_TRAIN_COMMAND).
@NonCPS
private static String trainCommand(Map config, Map defaultConfig) {
    // Keys that are not `mlsteps train` flags (generated).
    List<String> notFlags = ['command', 'trackingUri', 'experiment', 'config', 'mlsteps']
    List<String> words = Cli.command(config, ['train']) + Cli.flags(config, Cli.flagKeys(defaultConfig, notFlags))
    if (config.command instanceof List && config.command) {
        words << '--'
        words.addAll(Cli.items(config.command))
    }
    return Cli.shellLine(words)
}

// What the outputs tell of a failed training, after the exit code's message.
@NonCPS
private static String trainDetails(Map outputs) {
    List<String> details = []
    if (outputs['exit-code']) {
        details << "training command exit code ${outputs['exit-code']}"
    }
    if (outputs['run-id']) {
        details << "MLflow run ${outputs['run-id']}"
    }
    return details ? " [${details.join(', ')}]" : ''
}
