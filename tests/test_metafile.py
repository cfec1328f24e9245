"""metafile.yml lists every config under configs/ in mmdet's model-index format."""
import glob
import os.path as osp

import yaml

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))


def test_every_config_is_listed_with_results():
    with open(osp.join(REPO, 'metafile.yml')) as f:
        index = yaml.safe_load(f)
    collections = {c['Name'] for c in index['Collections']}
    listed = {m['Config']: m for m in index['Models']}
    configs = {osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '*.py'))}
    assert configs == set(listed)
    for config, model in listed.items():
        assert model['Name'] == osp.splitext(osp.basename(config))[0]
        assert model['In Collection'] in collections
        assert 'Results Source' in model['Metadata']
        for result in model['Results']:
            assert {'Task', 'Dataset', 'Metrics'} <= set(result)


def test_collection_readme_lists_every_config():
    with open(osp.join(REPO, 'metafile.yml')) as f:
        index = yaml.safe_load(f)
    for collection in index['Collections']:
        readme = osp.join(REPO, collection['README'])
        with open(readme) as f:
            text = f.read()
        for model in index['Models']:
            assert f'({osp.basename(model["Config"])})' in text, model['Config']
